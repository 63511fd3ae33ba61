"""Network inputs and targets (refine steps 2-4, denoise)."""
import dataclasses
import math

import numpy as np
import pytest
import torch

from isonet2core.config import Microscope, TrainConfig
from isonet2core.imaging import ctf, fourier
from isonet2core.training import rotations as rt
from isonet2core.training import targets

N = 16
MIC = Microscope(pixel_size_a=10.0, defocus_a=30000.0, tilt_min_deg=-50.0, tilt_max_deg=60.0)
DEV = torch.device("cpu")
BASE = TrainConfig(method="isonet2-n2n", cube_size=N, random_rot_weight=0.0)


def _filters(cfg=BASE, mic=MIC):
    return targets.cube_filters(N, mic, cfg, DEV)


def _wedged(x, filt):
    return fourier.apply_fourier_filter(x, filt.wedge)


def _pair(b=3, sigma=0.5, seed=0):
    g = torch.Generator().manual_seed(seed)
    signal = torch.randn(b, 1, N, N, N, generator=g)
    noise = [sigma * torch.randn(b, 1, N, N, N, generator=g) for _ in range(2)]
    f = _filters()
    return signal, torch.stack([_wedged(signal + n, f) for n in noise]), f


def _rfft(x):
    return torch.fft.rfftn(x, dim=(-3, -2, -1))


def _refine(cubes, filters, predict, rotations, cfg, generator, shared_network=False):
    """refine_batch on the fill predictions of ``predict`` (as the trainer composes them)."""
    cubes = targets.flip_cubes(cubes, filters)
    fill = targets.fill_predictions(targets.wedge_cubes(cubes, filters), predict, shared_network=shared_network)
    return targets.refine_batch(cubes, filters, fill, rotations, cfg, generator)


def test_shell_fill_noise_follows_the_halves_noise_spectrum():
    """fill_noise shells: halves whose noise rises with frequency give one level per shell (the
    noise's own), the white level lies between the lowest and highest of them, and the noise
    drawn has that level in every shell."""
    b, dims = 4, (-3, -2, -1)
    g = torch.Generator().manual_seed(3)
    shells = fourier.shell_index((N, N, N), rfft=True)
    amp = 0.1 + shells.float() / (N // 2)           # per-voxel noise amplitude of each shell

    def coloured():
        white = torch.randn(b, 1, N, N, N, generator=g)
        return torch.fft.irfftn(torch.fft.rfftn(white, dim=dims, norm="ortho") * amp, s=(N, N, N), dim=dims,
                                norm="ortho")
    f = _filters()
    m = f.wedge.expand(b, 1, *f.wedge.shape)
    signal = torch.randn(b, 1, N, N, N, generator=g)
    v = [_wedged(signal + coloured(), f) for _ in range(2)]
    s = targets.fill_noise_std(v[0], v[1], v[0], v[1], m, "shells")      # identity network
    assert s.shape == (b, int(shells.max()) + 1)
    inside = range(2, N // 2 + 1)
    for shell in inside:
        assert float(s[:, shell].mean()) == pytest.approx(0.1 + shell / (N // 2), rel=0.1)
    white = targets.fill_noise_std(v[0], v[1], v[0], v[1], m, "white")
    assert (white > s[:, 2]).all() and (white < s.amax(dim=1)).all()
    noise = targets.fill_noise_spectrum(s, (b, 1, N, N, N), torch.Generator().manual_seed(5))
    power = (noise.real ** 2 + noise.imag ** 2) / N ** 3                  # per voxel, real-space units
    for shell in inside:
        sel = shells == shell
        assert float(power[..., sel].mean()) == pytest.approx(float((s[:, shell] ** 2).mean()), rel=0.2)
    with pytest.raises(ValueError, match="spectrum must be one of"):
        targets.fill_noise_std(v[0], v[1], v[0], v[1], m, "pink")


def test_fill_noise_estimate_recovers_the_half_map_noise():
    sigma = 0.5
    signal, v, f = _pair(b=4, sigma=sigma)
    m = f.wedge.expand(4, 1, *f.wedge.shape)
    # identity network: nothing removed, nothing in the wedge -> the full noise level per half
    s = targets.fill_noise_std(v[0], v[1], v[0], v[1], m)
    assert torch.allclose(s, torch.full((4,), sigma), rtol=0.08)
    # a perfect denoiser leaves no residual: again the noise of one half
    clean = _wedged(signal, f)
    assert torch.allclose(targets.fill_noise_std(v[0], v[1], clean, clean, m), s)
    # a network output carrying all the noise in the wedge: nothing to add
    g = torch.Generator().manual_seed(9)
    loud = [sigma * 2 * torch.randn(4, 1, N, N, N, generator=g) for _ in range(2)]
    assert (targets.fill_noise_std(v[0], v[1], loud[0], loud[1], m) == 0).all()


def test_refine_targets_are_the_other_half_rotated_and_inputs_are_re_wedged():
    _, v, f = _pair()
    rots = [rt.WEDGE_MOVING_ROTATIONS[i] for i in (0, 5, 11)]
    calls = []

    def identity(half, x):
        calls.append(half)
        return x.clone()

    batch = _refine(v, [f] * 3, identity, rots, BASE, torch.Generator().manual_seed(1))
    assert sorted(calls) == [0, 1]
    # one network for both halves: one batched call, the same batch
    calls.clear()
    shared = _refine(v, [f] * 3, identity, rots, BASE, torch.Generator().manual_seed(1),
                                  shared_network=True)
    assert calls == [0]
    assert torch.equal(shared.inputs, batch.inputs) and torch.equal(shared.targets, batch.targets)
    assert batch.inputs.shape == (6, 1, N, N, N) and batch.targets.shape == (6, 1, N, N, N)
    m = f.wedge
    # inputs only hold measured frequencies of their own wedge
    assert float(_rfft(batch.inputs).abs()[..., m == 0].max()) < 1e-3
    for i, r in enumerate(rots):
        rm = rt.rotate_fourier_mask_90(f.wedge_full, r)[..., : N // 2 + 1]
        assert torch.equal(batch.target_mask[i, 0], rm) and torch.equal(batch.input_mask[i, 0], m)
        # where the target measures (R(M)) it is the rotated OTHER half's data
        for h, other in ((0, 1), (1, 0)):
            t = _rfft(batch.targets[h * 3 + i, 0])
            ref = _rfft(rt.rotate_cube_90(v[other, i, 0], r))
            assert torch.allclose(t[rm == 1], ref[rm == 1], atol=1e-3)
        # the input of half 0 is the rotated filled half 0, re-wedged and brought to the mean and
        # std of the measured cube: in M and R(M) (DC aside) it is the data times one factor
        u = _rfft(batch.inputs[i, 0])
        ref0 = _rfft(rt.rotate_cube_90(v[0, i, 0], r))
        both = (m == 1) & (rm == 1)
        both[0, 0, 0] = False
        scale = float((u[both].conj() * ref0[both]).real.sum() / (ref0[both].abs() ** 2).sum())
        assert scale > 0 and torch.allclose(u[both], scale * ref0[both], atol=1e-3 * float(ref0[both].abs().max()))
        measured = torch.fft.irfftn(m * _rfft(v[0, i, 0]), s=(N, N, N))
        assert float(batch.inputs[i, 0].std()) == pytest.approx(float(measured.std()), rel=1e-4)
        assert float(batch.inputs[i, 0].mean()) == pytest.approx(float(measured.mean()), abs=1e-5)
    assert batch.noise_std.shape == (3,) and (batch.noise_std > 0).all()


def test_single_map_targets_come_from_the_same_map_and_noise_goes_to_the_input_only():
    _, v, f = _pair()
    one = v[:1]
    rots = [rt.WEDGE_MOVING_ROTATIONS[2]] * 3
    cfg = dataclasses.replace(BASE, method="isonet2")
    ident = (lambda half, x: x.clone())
    plain = _refine(one, [f] * 3, ident, rots, cfg, torch.Generator().manual_seed(0))
    noisy = _refine(one, [f] * 3, ident, rots, dataclasses.replace(cfg, noise_level=0.1),
                                 torch.Generator().manual_seed(0))
    assert plain.inputs.shape == (3, 1, N, N, N) and plain.noise_std is None
    rm = plain.target_mask[0, 0]
    ref = _rfft(rt.rotate_cube_90(one[0, 0, 0], rots[0]))
    assert torch.allclose(_rfft(plain.targets[0, 0])[rm == 1], ref[rm == 1], atol=1e-3)
    assert torch.equal(plain.targets, noisy.targets)
    added = noisy.inputs - plain.inputs
    # 0.1 x the cube's 4-96 percentile range (about 3.5 std for these cubes): about a third of
    # the input's std, in the measured region only
    ratio = float(added.std() / plain.inputs.std())
    assert 0.2 < ratio < 0.5, ratio
    assert float(_rfft(added).abs()[..., f.wedge == 0].max()) < 1e-3


def test_network_mode_fill_and_output_use_the_effective_ctf():
    cfg = dataclasses.replace(BASE, ctf_mode="network", bfactor=100.0)
    flipped = targets.cube_filters(N, MIC, cfg, DEV)
    eff = ctf.effective_ctf((N,) * 3, MIC, bfactor=100.0, clip_first_peak_mode=1)
    assert torch.allclose(flipped.ctf, eff.abs()) and flipped.flip is not None
    signed = targets.cube_filters(N, MIC, dataclasses.replace(cfg, do_phaseflip_input=False), DEV)
    assert torch.allclose(signed.ctf, eff) and signed.flip is None
    already = targets.cube_filters(N, MIC, dataclasses.replace(cfg, is_ctf_flipped=True), DEV)
    assert already.flip is None and torch.allclose(already.ctf, eff.abs())
    # the wedge is filled with C * FFT(f) + FFT(N): the prediction CTF-modulated, the noise (a
    # detector's) after the CTF; f is predicted from the wedged cube. Same noise draw in both runs.
    _, v, _ = _pair()
    c2 = dataclasses.replace(cfg, do_phaseflip_input=False)
    square = (lambda h, x: x ** 2)
    ident_rot = [rt.CUBE_ROTATIONS[0]] * 3
    with_c = _refine(v, [signed] * 3, square, ident_rot, c2, torch.Generator().manual_seed(0))
    without = _refine(v, [dataclasses.replace(signed, ctf=None, fill_ctf=None)] * 3, square, ident_rot, c2,
                      torch.Generator().manual_seed(0))
    wedge = signed.wedge == 0
    f_odd = torch.fft.irfftn(signed.wedge * _rfft(v[1]), s=(N, N, N)) ** 2     # targets of half 0 are half 1's
    a = (_rfft(with_c.targets[:3]) - _rfft(without.targets[:3]))[..., wedge]
    b = ((signed.ctf - 1.0) * _rfft(f_odd))[..., wedge]
    assert float(a.abs().max()) > 0 and torch.allclose(a, b, atol=1e-3 * float(b.abs().max()))
    assert torch.equal(with_c.output_ctf[0, 0], signed.ctf) and without.output_ctf is None


def test_phase_only_and_wiener_modes():
    ph = targets.cube_filters(N, MIC, dataclasses.replace(BASE, ctf_mode="phase_only", do_phaseflip_input=False), DEV)
    assert ph.flip is not None and ph.ctf is None and ph.target_filter is None
    assert torch.equal(ph.flip, ctf.ctf_sign((N,) * 3, MIC))
    w_cfg = dataclasses.replace(BASE, ctf_mode="wiener", snrfalloff=0.5, deconvstrength=2.0, highpassnyquist=0.1)
    wf = targets.cube_filters(N, MIC, w_cfg, DEV)
    expected = ctf.wiener_filter((N,) * 3, MIC, snrfalloff=0.5, deconvstrength=2.0, highpassnyquist=0.1,
                                 phaseflipped=True)
    assert torch.allclose(wf.target_filter, expected)
    # the wiener-mode network outputs CTF-corrected density too: its wedge filling is modulated
    eff = ctf.effective_ctf((N,) * 3, MIC, bfactor=0.0, clip_first_peak_mode=1)
    assert wf.ctf is None and torch.allclose(wf.fill_ctf, eff.abs())
    _, v, _ = _pair()
    batch = _refine(v, [wf] * 3, lambda h, x: x.clone(), [rt.CUBE_ROTATIONS[0]] * 3, w_cfg,
                                 torch.Generator().manual_seed(0))
    assert batch.output_ctf is None
    unfiltered = _refine(v, [dataclasses.replace(wf, target_filter=None)] * 3,
                                      lambda h, x: x.clone(), [rt.CUBE_ROTATIONS[0]] * 3, w_cfg,
                                      torch.Generator().manual_seed(0))
    assert torch.allclose(batch.targets, fourier.apply_fourier_filter(unfiltered.targets, expected), atol=1e-5)


def test_denoise_pairs_even_with_odd_under_wedge_keeping_rotations():
    _, v, f = _pair()
    rots = targets.draw_rotations("n2n", 3, np.random.default_rng(0), 0.9)
    assert all(r in rt.WEDGE_KEEPING_ROTATIONS for r in rots)
    batch = targets.denoise_batch(v, [f] * 3, rots)
    assert batch.input_mask is None
    for i, r in enumerate(rots):
        assert torch.equal(batch.inputs[i], rt.rotate_cube_90(v[0, i], r))
        assert torch.equal(batch.targets[i], rt.rotate_cube_90(v[1, i], r))
        assert torch.equal(batch.inputs[3 + i], batch.targets[i])
        assert torch.equal(batch.targets[3 + i], batch.inputs[i])
    refine_rots = targets.draw_rotations("isonet2-n2n", 50, np.random.default_rng(0), 0.0)
    assert all(r in rt.WEDGE_MOVING_ROTATIONS for r in refine_rots)


@pytest.mark.parametrize("mode, slope", [("white", 0.0), ("nofilter", -0.5), ("ramp", 0.5),
                                         ("hamming", None)])
def test_shaped_noise_is_back_projection_noise(mode, slope):
    """Unit variance; white along the tilt axis y; in the (z, x) plane the amplitude of
    unweighted (|k|^-1/2) or ramp-weighted (|k|^1/2) back-projection, as the IsoNet2 program's
    noise volumes (iradon of white sinograms)."""
    n = 32
    x = targets.shaped_noise((4, 1, n, n, n), mode, torch.Generator().manual_seed(0), DEV)
    assert abs(float(x.std()) - 1.0) < 0.02
    power = _rfft(x).abs().pow(2).mean(dim=(0, 1))                     # (kz, ky, kx')
    kz, ky, kx = fourier.freq_grid((n,) * 3, rfft=True)
    kzx = torch.sqrt(kz * kz + kx * kx).expand_as(power)
    ky = ky.abs().expand_as(power)
    # white along y: at fixed |k_zx| the power does not depend on ky
    band = (kzx > 0.2) & (kzx < 0.3)
    lo_y, hi_y = float(power[band & (ky < 0.15)].mean()), float(power[band & (ky > 0.35)].mean())
    assert 0.85 < lo_y / hi_y < 1.15
    rings = [(0.08, 0.12), (0.36, 0.44)]
    p1, p2 = (float(power[(kzx > a) & (kzx < b)].mean()) for a, b in rings)
    if slope is None:            # the Hamming window brings the ramp down near Nyquist
        ramp = targets.shaped_noise((4, 1, n, n, n), "ramp", torch.Generator().manual_seed(0), DEV)
        pr = _rfft(ramp).abs().pow(2).mean(dim=(0, 1))
        assert p2 / p1 < 0.5 * float(pr[(kzx > 0.36) & (kzx < 0.44)].mean()) / float(
            pr[(kzx > 0.08) & (kzx < 0.12)].mean())
    else:                        # power ~ |k|^(2 slope): log-ratio over the two rings
        measured = 0.5 * math.log(p2 / p1) / math.log(0.40 / 0.10)
        assert measured == pytest.approx(slope, abs=0.08)


def test_input_noise_is_on_the_official_percentile_scale():
    g = torch.Generator().manual_seed(1)
    cubes = torch.randn(3, 1, 16, 16, 16, generator=g) * torch.tensor([1.0, 2.0, 5.0]).view(3, 1, 1, 1, 1)
    wedge = fourier.radial_freq((16,) * 3, rfft=True) < 0.3           # any measured region
    noise = targets.input_noise(cubes, wedge.float(), 0.2, "nofilter", g)
    q = torch.quantile(cubes.reshape(3, -1), torch.tensor([0.04, 0.96]), dim=1)
    expected = 0.2 * (q[1] - q[0])
    assert torch.allclose(noise.reshape(3, -1).std(dim=1), expected, rtol=1e-4)
    # and only where the cube measures
    assert float(_rfft(noise)[:, :, ~wedge].abs().max()) < 1e-3
    assert float(targets.percentile_range(cubes)[1, 0, 0, 0, 0]) == pytest.approx(float(q[1, 1] - q[0, 1]))


def test_reused_fill_predictions_give_new_rotations_and_noise_on_the_same_cubes():
    """The trainer reuses one batch's fill predictions for several steps: each call of
    refine_batch rotates and draws the fill noise anew, the measured data stay the cubes'."""
    _, v, f = _pair()
    fill = targets.fill_predictions(v, lambda h, x: 0.5 * x, shared_network=True)
    assert fill.shape == v.shape and torch.allclose(fill, 0.5 * v)
    g = torch.Generator().manual_seed(3)
    r1, r2 = [rt.WEDGE_MOVING_ROTATIONS[1]] * 3, [rt.WEDGE_MOVING_ROTATIONS[7]] * 3
    a = targets.refine_batch(v, [f] * 3, fill, r1, BASE, g)
    b = targets.refine_batch(v, [f] * 3, fill, r1, BASE, g)
    c = targets.refine_batch(v, [f] * 3, fill, r2, BASE, g)
    assert torch.equal(a.noise_std, b.noise_std) and (a.noise_std > 0).all()
    # same rotation, new noise: identical where measured in the input, different in the wedge
    rm = a.target_mask[0, 0] == 1
    da, db = _rfft(a.targets[0, 0]), _rfft(b.targets[0, 0])
    assert torch.allclose(da[rm], db[rm], atol=1e-3) and not torch.allclose(da[~rm], db[~rm], atol=1e-2)
    assert not torch.allclose(a.inputs, c.inputs, atol=1e-2)
    with pytest.raises(ValueError, match="do not match"):
        targets.refine_batch(v, [f] * 3, fill[:1], r1, BASE, g)
