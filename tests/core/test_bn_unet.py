"""The batch-normalised U-Net (``unet-*``, the IsoNet2 program's layout): parameter counts,
state-dict names, shapes, residual output, batch statistics."""
import pytest
import torch

from isonet2core.nets.bn_unet import BNUNet3D
from isonet2core.nets.registry import build, channels_of
from isonet2core.nets.unet import count_parameters


def test_unet_small_has_the_official_parameter_count():
    # the IsoNet2 program logs "Total number of parameters: 8353889" for its unet-small
    assert count_parameters(build("unet-small")) == 8_353_889


def _expected(c):
    conv = lambda cin, cout, k, bias=False: cin * cout * k ** 3 + (cout if bias else 0)  # noqa: E731
    bn = lambda ch: 2 * ch                                                                 # noqa: E731
    n = conv(1, c[0], 3, bias=True)
    for i in range(4):
        n += 3 * (conv(c[i], c[i], 3) + bn(c[i]))                         # encoder stack
        n += conv(c[i], c[i + 1], 2) + bn(c[i + 1])                       # strided down conv
        n += c[i + 1] * c[i] * 8 + c[i]                                   # transposed up conv
        n += conv(2 * c[i], c[i], 3) + 2 * conv(c[i], c[i], 3) + 3 * bn(c[i])   # decoder stack
    n += 2 * (conv(c[4], c[4], 3) + bn(c[4]))                             # bottleneck
    return n + conv(c[0], 1, 3, bias=True)                                # final 3x3x3


@pytest.mark.parametrize("arch", ["unet-small", "unet-medium", "unet-large"])
def test_parameter_counts_follow_the_documented_layout(arch):
    assert count_parameters(build(arch)) == _expected(channels_of(arch))


def test_state_dict_names_are_the_official_ones():
    keys = set(build("unet-small").state_dict())
    for k in ("encoder.module_dict.first_conv.weight", "encoder.module_dict.first_conv.bias",
              "encoder.module_dict.conv_stack_0.net.0.weight", "encoder.module_dict.conv_stack_0.net.1.running_mean",
              "encoder.module_dict.stride_conv_3.net.1.num_batches_tracked",
              "encoder.module_dict.bottleneck.net.3.weight", "decoder.module_dict.deconv_3.weight",
              "decoder.module_dict.conv_stack_0.net.7.bias", "final.weight", "final.bias"):
        assert k in keys, k
    assert not any(k.startswith("encoder.module_dict.bottleneck.net.6") for k in keys)   # two convs there


def test_shapes_residual_and_gradients():
    torch.manual_seed(0)
    net = BNUNet3D((4, 8, 8, 8, 8))
    x = torch.randn(2, 1, 32, 16, 48)
    y = net(x)
    assert y.shape == x.shape
    y.square().mean().backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in net.parameters())
    with torch.no_grad():
        net.final.weight.zero_()
        net.final.bias.zero_()
        assert torch.equal(net(x), x)             # the output is input + final(features)


def test_training_mode_normalises_by_the_batch():
    """In training mode each block normalises by the batch, so the residual branch does not
    see the input's scale: net(3 x) - 3 x = net(x) - x. In eval mode, with fresh running
    statistics, it does."""
    torch.manual_seed(1)
    net = BNUNet3D((4, 8, 8, 8, 8))
    x = torch.randn(4, 1, 16, 16, 16)
    with torch.no_grad():
        net.final.bias.zero_()
        net.encoder.module_dict["first_conv"].bias.zero_()
        net.train()
        a, b = net(x) - x, net(3.0 * x) - 3.0 * x
        assert torch.allclose(a, b, atol=1e-3 * float(a.abs().max()))
        net.eval()
        c, d = net(x) - x, net(3.0 * x) - 3.0 * x
        assert (c - d).abs().max() > 0.1 * float(c.abs().max())


def test_errors():
    with pytest.raises(ValueError):
        BNUNet3D((4, 8, 8))
    with pytest.raises(ValueError, match="multiples of 16"):
        BNUNet3D((2, 2, 2, 2, 2))(torch.zeros(1, 1, 16, 16, 24))
    with pytest.raises(ValueError, match=r"\(b, 1, z, y, x\)"):
        BNUNet3D((2, 2, 2, 2, 2))(torch.zeros(1, 2, 16, 16, 16))
