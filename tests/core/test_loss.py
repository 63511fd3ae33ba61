"""Masked Fourier loss (refine step 5): identities against a direct full-FFT reference."""
import numpy as np
import pytest
import torch

from isonet2core.training.loss import masked_loss, plain_loss, rfft_weights


def _friedel_symmetric(a: np.ndarray) -> np.ndarray:
    """Average a full-layout array with its Friedel mate ``a[-k]``."""
    mate = np.roll(np.flip(a, axis=(0, 1, 2)), 1, axis=(0, 1, 2))
    return 0.5 * (a + mate)


def _binary_symmetric_mask(shape, rng, fraction=0.6):
    a = _friedel_symmetric(rng.random(shape))
    m = (a < np.quantile(a, fraction)).astype(np.float32)
    m[0, 0, 0] = 1.0
    return m


def _rfft_half(mask_full: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(mask_full[..., : mask_full.shape[-1] // 2 + 1]))


def _reference_term(diff: np.ndarray, weight_full: np.ndarray) -> float:
    """mean over voxels and batch of |IFFT(W * FFT(d))|^2, full complex FFT (numpy)."""
    out = np.fft.ifftn(weight_full * np.fft.fftn(diff, axes=(-3, -2, -1)), axes=(-3, -2, -1))
    return float(np.mean(np.abs(out) ** 2))


@pytest.fixture
def pair():
    rng = np.random.default_rng(3)
    shape = (2, 1, 12, 10, 16)
    x = rng.standard_normal(shape).astype(np.float32)
    y = rng.standard_normal(shape).astype(np.float32)
    m = _binary_symmetric_mask(shape[-3:], rng)
    rm = _binary_symmetric_mask(shape[-3:], rng)
    return x, y, m, rm


def test_rfft_weights_count_every_full_spectrum_column_once():
    for n in (8, 9, 16):
        assert float(rfft_weights(n).sum()) == n


def test_l2_terms_match_full_fft_reference(pair):
    x, y, m, rm = pair
    terms = masked_loss(torch.from_numpy(x), torch.from_numpy(y), _rfft_half(m), _rfft_half(rm),
                        mw_weight=7.0, loss_func="L2")
    n2n_ref = _reference_term(x - y, m * rm)
    mw_ref = _reference_term(x - y, (1 - m) * rm)
    assert mw_ref > 0 and n2n_ref > 0
    assert float(terms.n2n) == pytest.approx(n2n_ref, rel=1e-5)
    assert float(terms.mw) == pytest.approx(mw_ref, rel=1e-5)
    assert float(terms.total) == pytest.approx(n2n_ref + 7.0 * mw_ref, rel=1e-5)


def test_weight_one_gives_loss_restricted_to_target_mask(pair):
    x, y, m, rm = pair
    terms = masked_loss(torch.from_numpy(x), torch.from_numpy(y), _rfft_half(m), _rfft_half(rm),
                        mw_weight=1.0)
    assert float(terms.total) == pytest.approx(_reference_term(x - y, rm), rel=1e-5)


def test_weight_one_and_full_target_mask_is_the_plain_loss(pair):
    x, y, m, _ = pair
    ones = torch.ones_like(_rfft_half(m))
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    for func in ("L2", "L1", "Huber"):
        # with M = 1 everywhere the wedge term vanishes and the other term is the plain loss
        full = masked_loss(xt, yt, ones, ones, mw_weight=1.0, loss_func=func)
        assert float(full.total) == pytest.approx(float(plain_loss(xt, yt, func)), rel=1e-5)
    l2 = masked_loss(xt, yt, _rfft_half(m), ones, mw_weight=1.0, loss_func="L2")
    assert float(l2.total) == pytest.approx(float(plain_loss(xt, yt, "L2")), rel=1e-5)


def test_identity_rotation_has_no_wedge_term(pair):
    x, y, m, _ = pair
    for func in ("L2", "L1", "Huber"):
        terms = masked_loss(torch.from_numpy(x), torch.from_numpy(y), _rfft_half(m), _rfft_half(m),
                            mw_weight=50.0, loss_func=func)
        assert float(terms.mw) == 0.0
        assert float(terms.n2n) > 0.0
        assert float(terms.total) == float(terms.n2n)


def test_wedge_weight_scales_only_the_wedge_term_and_gradients_flow(pair):
    x, y, m, rm = pair
    xt = torch.from_numpy(x).requires_grad_(True)
    a = masked_loss(xt, torch.from_numpy(y), _rfft_half(m), _rfft_half(rm), mw_weight=1.0)
    b = masked_loss(xt, torch.from_numpy(y), _rfft_half(m), _rfft_half(rm), mw_weight=20.0)
    assert float(a.n2n.detach()) == float(b.n2n.detach()) and float(a.mw.detach()) == float(b.mw.detach())
    b.total.backward()
    assert torch.isfinite(xt.grad).all() and float(xt.grad.abs().sum()) > 0


def test_unknown_loss_function_is_rejected(pair):
    x, y, m, rm = pair
    with pytest.raises(ValueError, match="loss_func"):
        masked_loss(torch.from_numpy(x), torch.from_numpy(y), _rfft_half(m), _rfft_half(rm),
                    mw_weight=1.0, loss_func="L3")


def test_wedge_term_takes_its_own_loss_function(pair):
    """mw_loss_func: the Noise2Noise term keeps loss_func's value, the wedge term takes its own
    (FSC+L2: the sum of its FSC and L2 terms); None: loss_func for both."""
    x, y, m, rm = pair
    args = (torch.from_numpy(x), torch.from_numpy(y), _rfft_half(m), _rfft_half(rm))
    fsc = masked_loss(*args, mw_weight=5.0, loss_func="FSC")
    l2 = masked_loss(*args, mw_weight=5.0, loss_func="L2")
    mixed = masked_loss(*args, mw_weight=5.0, loss_func="FSC", mw_loss_func="L2")
    assert float(mixed.n2n) == float(fsc.n2n)
    assert float(mixed.mw) == pytest.approx(_reference_term(x - y, (1 - m) * rm), rel=1e-5)
    assert float(mixed.mw) == float(l2.mw) != float(fsc.mw)
    assert float(mixed.total) == pytest.approx(float(fsc.n2n) + 5.0 * float(l2.mw), rel=1e-6)
    both = masked_loss(*args, mw_weight=5.0, loss_func="FSC", mw_loss_func="FSC+L2")
    assert float(both.mw) == pytest.approx(float(fsc.mw) + float(l2.mw), rel=1e-6)
    same = masked_loss(*args, mw_weight=5.0, loss_func="FSC", mw_loss_func=None)
    assert float(same.total) == float(fsc.total)
    with pytest.raises(ValueError, match="L3"):
        masked_loss(*args, mw_weight=1.0, loss_func="FSC", mw_loss_func="L3")


# ----------------------------------------------------------------------------- FSC loss
def _fsc_loss_numpy(x, y):
    """1 - mean shell FSC per cube (shells floor(|k| n), 1..n//2, full FFT), averaged."""
    import numpy as np
    n = x.shape[-1]
    k = np.sqrt(sum(g ** 2 for g in np.meshgrid(*[np.fft.fftfreq(s) for s in x.shape[-3:]], indexing="ij")))
    shell = np.floor(k * n).astype(int)
    out = []
    for a, b in zip(x.reshape(-1, *x.shape[-3:]), y.reshape(-1, *y.shape[-3:])):
        fa, fb = np.fft.fftn(a), np.fft.fftn(b)
        vals = []
        for s in range(1, n // 2 + 1):
            sel = shell == s
            num = np.sum((fa[sel] * np.conj(fb[sel])).real)
            den = np.sqrt(np.sum(np.abs(fa[sel]) ** 2) * np.sum(np.abs(fb[sel]) ** 2))
            vals.append(num / den)
        out.append(1 - np.mean(vals))
    return float(np.mean(out))


def test_fsc_loss_known_values_and_independent_reference():
    torch.manual_seed(0)
    x = torch.randn(2, 1, 16, 16, 16)
    y = x + 0.7 * torch.randn_like(x)
    assert float(plain_loss(x, x, "FSC")) == pytest.approx(0.0, abs=1e-6)
    assert float(plain_loss(x, -x, "FSC")) == pytest.approx(2.0, abs=1e-6)
    assert float(plain_loss(x, 5.0 * x + 0.0, "FSC")) == pytest.approx(0.0, abs=1e-6)   # scale-free
    assert float(plain_loss(x, y, "FSC")) == pytest.approx(_fsc_loss_numpy(x.numpy(), y.numpy()), abs=1e-5)


def test_masked_fsc_loss_terms():
    torch.manual_seed(1)
    x = torch.randn(2, 1, 16, 16, 16, requires_grad=True)
    y = torch.randn(2, 1, 16, 16, 16)
    ones = torch.ones(16, 16, 9)
    # everything measured in both: the n2n term is the plain FSC loss, the wedge term has no points
    terms = masked_loss(x, y, ones, ones, mw_weight=200.0, loss_func="FSC")
    assert float(terms.n2n) == pytest.approx(float(plain_loss(x, y, "FSC")), abs=1e-6)
    assert float(terms.mw) == pytest.approx(1.0, abs=1e-6)           # no power: FSC 0 in every shell
    terms.total.backward()                                           # empty shells: finite gradients
    assert torch.isfinite(x.grad).all()
    x.grad = None
    half = torch.zeros(16, 16, 9)
    half[:8] = 1.0
    terms = masked_loss(x, y, half, ones, mw_weight=2.0, loss_func="FSC")
    assert float(terms.total) == pytest.approx(float(terms.n2n) + 2.0 * float(terms.mw), rel=1e-6)
    terms.total.backward()
    assert torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0


@pytest.mark.parametrize("weight", [0.0, -1.0])
def test_mw_weight_zero_or_negative_is_the_plain_loss(weight):
    """The IsoNet2 program's default -1 (and 0): no masks, the base loss over the whole cube."""
    g = torch.Generator().manual_seed(3)
    x = torch.randn(2, 1, 8, 8, 8, generator=g)
    y = torch.randn(2, 1, 8, 8, 8, generator=g)
    half = torch.zeros(8, 8, 5)           # masks that would drop everything: ignored
    l2 = masked_loss(x, y, half, half, mw_weight=weight, loss_func="L2")
    assert float(l2.total) == pytest.approx(float(((x - y) ** 2).mean()), rel=1e-6)
    assert float(l2.n2n) == float(l2.total) and float(l2.mw) == 0.0
    l1 = masked_loss(x, y, half, half, mw_weight=weight, loss_func="L1")
    assert float(l1.total) == pytest.approx(float((x - y).abs().mean()), rel=1e-6)
    fsc = masked_loss(x, x * 3.0, half, half, mw_weight=weight, loss_func="FSC")
    assert float(fsc.total) == pytest.approx(0.0, abs=1e-5)    # scale-blind, whole spectrum


def test_fsc_plus_l2_is_the_sum_term_by_term(pair):
    """FSC+L2 (the denoise default): FSC for correlation, L2 for the amplitudes FSC leaves free."""
    x, y, m, rm = (torch.from_numpy(a) for a in pair)
    m, rm = _rfft_half(m.numpy()), _rfft_half(rm.numpy())
    both = masked_loss(x, y, m, rm, mw_weight=5.0, loss_func="FSC+L2")
    fsc = masked_loss(x, y, m, rm, mw_weight=5.0, loss_func="FSC")
    l2 = masked_loss(x, y, m, rm, mw_weight=5.0, loss_func="L2")
    for a, b, c in zip(both, fsc, l2):
        assert float(a) == pytest.approx(float(b) + float(c), rel=1e-6)
    assert float(plain_loss(x, y, "FSC+L2")) == pytest.approx(
        float(plain_loss(x, y, "FSC")) + float(((x - y) ** 2).mean()), rel=1e-6)
    # unlike FSC alone, the sum is not blind to the scale of the output
    assert float(plain_loss(x, 3.0 * x, "FSC+L2")) == pytest.approx(float((4.0 * x ** 2).mean()), rel=1e-5)
