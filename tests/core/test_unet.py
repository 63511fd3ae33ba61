"""The plain U-Net family (``plain-unet-*``): shapes, residual identity, parameter counts."""
import pytest
import torch

from isonet2core.nets.registry import build, channels_of
from isonet2core.nets.unet import UNet3D, count_parameters


def _conv(cin, cout, k):
    return cin * cout * k ** 3 + cout


def _expected_parameters(c):
    """Parameter count of the documented layout, computed independently of the module."""
    n = 0
    for i in range(4):
        cin = 1 if i == 0 else c[i]
        n += _conv(cin, c[i], 3) + 2 * _conv(c[i], c[i], 3)          # encoder block
        n += _conv(c[i], c[i + 1], 2)                                  # strided down conv
        n += c[i + 1] * c[i] * 8 + c[i]                                # transposed up conv
        n += _conv(2 * c[i], c[i], 3) + 2 * _conv(c[i], c[i], 3)      # decoder block
    n += 3 * _conv(c[4], c[4], 3)                                      # bottom block
    n += _conv(c[0], 1, 1)                                             # 1x1x1 head
    return n


@pytest.mark.parametrize("arch,expected", [("unet-small", 10_113_841),
                                           ("unet-medium", 26_722_145),
                                           ("unet-large", 47_408_065)])
def test_parameter_counts(arch, expected):
    assert channels_of(arch)[0] == {"unet-small": 16, "unet-medium": 32, "unet-large": 64}[arch]
    assert _expected_parameters(channels_of(arch)) == expected
    assert count_parameters(build("plain-" + arch)) == expected


@pytest.mark.parametrize("arch", ["unet-small", "unet-medium", "unet-large"])
def test_shapes_and_fresh_network_is_identity(arch):
    torch.manual_seed(0)
    net = build("plain-" + arch).eval()
    x = torch.randn(1, 1, 16, 16, 16)
    with torch.inference_mode():
        y = net(x)
    assert y.shape == x.shape
    assert torch.equal(y, x)  # zero-initialised head: a fresh network is the identity


def test_shape_cube32_batch2_nonzero_residual_and_gradients():
    torch.manual_seed(1)
    net = UNet3D((4, 8, 8, 8, 8))
    torch.nn.init.normal_(net.head.weight, std=0.1)
    x = torch.randn(2, 1, 32, 32, 48)
    y = net(x)
    assert y.shape == x.shape
    assert not torch.allclose(y, x)
    y.square().mean().backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in net.parameters())
    # zeroing the last layer restores the residual identity
    with torch.no_grad():
        net.head.weight.zero_()
        net.head.bias.zero_()
        assert torch.equal(net(x), x)


def test_skip_connections_carry_fine_detail():
    """The head sees level-0 features, so a single voxel impulse changes the output there."""
    torch.manual_seed(2)
    net = UNet3D((4, 8, 8, 8, 8)).eval()
    torch.nn.init.normal_(net.head.weight, std=0.1)
    x = torch.zeros(1, 1, 16, 16, 16)
    x2 = x.clone()
    x2[0, 0, 5, 6, 7] = 1.0
    with torch.inference_mode():
        d = (net(x2) - net(x)).abs()[0, 0]
    assert d[5, 6, 7] > 0.5  # residual passes the impulse
    assert d[4:7, 5:8, 6:9].sum() > d[5, 6, 7]  # and the convolutions spread it


def test_errors():
    with pytest.raises(ValueError, match="unet-small, unet-medium, unet-large, plain-unet-small"):
        build("unet-huge")
    net = UNet3D((2, 2, 2, 2, 2))
    with pytest.raises(ValueError, match="multiples of 16"):
        net(torch.zeros(1, 1, 16, 16, 20))
    with pytest.raises(ValueError, match=r"\(b, 1, z, y, x\)"):
        net(torch.zeros(1, 2, 16, 16, 16))
