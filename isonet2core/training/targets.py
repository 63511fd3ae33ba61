"""Network inputs and training targets for each method and CTF mode (refine steps 2-4, denoise).

All tensors are float32 batches ``(b, 1, n, n, n)`` of normalised cubes; Fourier filters use
the ``rfftn`` layout ``(n, n, n // 2 + 1)`` (unshifted, :mod:`isonet2core.imaging.fourier`), stacked per
cube as ``(b, 1, n, n, n // 2 + 1)`` so that every cube carries its own tomogram's wedge and CTF.
Half 0 is the even map, half 1 the odd map.

**isonet2-n2n** (even/odd pairs), per cube pair ``v0, v1`` cut at the same place:

1. (step 2, no gradient) ``f_h = f(M v_h)``, predicted from the *wedged* cube as prediction
   sees data (eval mode, or batch statistics for batch-normalised networks); wedge-filled
   cubes ``v~_h = IFFT((1 - M) * (C * FFT(f_h) + FFT(N_h)) + M * FFT(v_h))`` with ``N_h``
   white Gaussian noise of variance ``s^2`` (independent per half) and ``C`` the effective CTF
   (:func:`isonet2core.imaging.ctf.effective_ctf`) in network and wiener modes (both train the network
   to output CTF-corrected density), 1 otherwise. The noise is added *after* the CTF, as a
   detector adds it to recorded data (the IsoNet2 program's order since 2026-04; the paper's
   formula filters it too, which leaves almost no noise at low frequency in network mode).
   Noise level: the paper's ``s^2 = Var(v0 - v1) - Var(f(v0) - f(v1))`` is measured here per
   cube pair, spectrally, and per half (the factor 1/2): with ``D = FFT(v0 - v1)`` and
   ``E = FFT(f0 - f1)`` (orthonormal), ``s^2 = max(0, mean_{k in M} |D_k|^2 - mean_{k not in M}
   |E_k|^2) / 2``. ``mean_{k in M} |D_k|^2`` is the noise power per frequency of the difference
   where the data are measured (the wedge of a WBP map holds no noise to measure, so a
   real-space variance would understate it by the measured fraction), halved for one half;
   the second term is the noise the network output still carries in the wedge, which the
   filled region already contains. Clamped at 0. A fresh (identity) network therefore fills
   the wedge with noise of the data's level; a perfect denoiser adds exactly the removed noise.
   With ``fill_noise shells`` both means are taken shell by shell and the noise gets one level
   per shell (the halves' noise spectrum instead of its mean level; :func:`fill_noise_std`).
   The predictions ``f_h`` (:func:`fill_predictions`, on cubes phase flipped once by
   :func:`flip_cubes` and wedged by :func:`wedge_cubes`) are separate from the rest
   (:func:`refine_batch`), so that the trainer can train one batch of cubes under
   ``fill_reuse`` rotations in consecutive steps while predicting it once; the noise ``N_h``
   and everything below are drawn anew on every step.
2. (step 3) one rotation ``R`` per pair (:mod:`.rotations`), the same for both halves:
   input ``u_h = IFFT(M * FFT(R(v~_h) + n_h))`` brought to the mean and standard deviation of
   the measured cube ``IFFT(M * FFT(v_h))`` (:func:`match_moments`; the paper's rescaling, so
   the network always meets inputs of the scale it meets in prediction), target
   ``t_h = R(v~_{1-h})`` (the OTHER half), masks ``M`` (input) and ``R(M)`` (target) for the
   masked loss. ``n_h`` is the optional synthetic noise (``noise_level``), zero by default.
3. (step 4) wiener mode: ``t_h <- IFFT(W * FFT(t_h))`` with the user's ``snrfalloff``,
   ``deconvstrength``, ``highpassnyquist`` (:func:`isonet2core.imaging.ctf.wiener_filter`); network
   mode: the trainer compares ``IFFT(CTF_eff * FFT(f(u_h)))`` with ``t_h``
   (:attr:`Batch.output_ctf`). CTF_eff has the first-peak clipping and the B-factor envelope
   applied once.

**isonet2** (one map): the same without the pair: ``N = 0``, the target is the rotated filled
cube of the same map, and ``mw_weight`` applies as for N2N. Optional synthetic noise is added to
the re-wedged input, on the IsoNet2 program's scale and with its spectra
(:func:`input_noise`): its std is ``noise_level`` times the cube's 4-96 percentile range (the
official program normalises each cube by those percentiles and adds unit-std noise), and it is
back-projection noise of a tilt series: white along the tilt axis y, in the (z, x) plane an
amplitude ``|k_zx|^(-1/2)`` (``nofilter``: plain back-projection), ``|k_zx|^(1/2)`` (``ramp``:
weighted back-projection) or the ramp times a Hamming window ``0.54 + 0.46 cos(2 pi |k_zx|)``
(``hamming``), or flat (``white``); only where the cube measures (the missing wedge removed),
then scaled to unit std.

**n2n** (denoise): input ``v_h``, target ``v_{1-h}``, no wedge filling; the only rotations are
augmentations that keep the wedge in place (:data:`.rotations.WEDGE_KEEPING_ROTATIONS`, same
for input and target), so the network sees the wedge orientation it will meet in prediction.
Plain (unmasked) loss. CTF modes as above.

**CTF modes.** ``None``: none. ``phase_only``: input and target cubes are phase flipped
(``IFFT(sign(T) FFT(v))``) unless the tomograms are already flipped (``isCTFflipped``).
``wiener`` and ``network``: the cubes are phase flipped when ``do_phaseflip_input`` (and not
already flipped); the CTF used downstream is then ``|CTF|``, else its signed value. Phase
flipping happens on each cube before anything else, so inputs and targets agree.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Optional, Sequence

import numpy as np
import torch

from isonet2core.config import FILL_NOISES, Microscope, TrainConfig, flips_input, method_traits
from isonet2core.imaging import ctf, fourier, wedge
from isonet2core.training import rotations as rot
from isonet2core.training.loss import rfft_weights

DIMS = (-3, -2, -1)


@dataclass
class CubeFilters:
    """Fourier filters of one tomogram at the cube size, on the training device.

    ``wedge_full`` ``(n, n, n)`` full layout (for rotation); the others rfft layout
    ``(n, n, n // 2 + 1)``: ``wedge`` (M), ``flip`` (sign of the CTF, to phase flip cubes; None =
    no flipping), ``ctf`` (CTF_eff of network mode, signed or ``|.|`` to match the cubes; None =
    not network mode), ``target_filter`` (Wiener filter of wiener mode; None otherwise).
    """
    wedge_full: torch.Tensor
    wedge: torch.Tensor
    flip: Optional[torch.Tensor] = None
    ctf: Optional[torch.Tensor] = None
    target_filter: Optional[torch.Tensor] = None
    fill_ctf: Optional[torch.Tensor] = None


def cubes_are_flipped(cfg: TrainConfig) -> bool:
    """Whether the training cubes are phase flipped (by the user or by us).

    Parameters
    ----------
    cfg : TrainConfig
        Its ``ctf_mode``, ``is_ctf_flipped`` and ``do_phaseflip_input``.

    Returns
    -------
    bool
        True for flipped cubes (module docstring, CTF modes).
    """
    return cfg.ctf_mode is not None and (
        cfg.is_ctf_flipped or flips_input(cfg.ctf_mode, cfg.do_phaseflip_input, is_ctf_flipped=False))


def cube_filters(cube_size: int, microscope: Microscope, cfg: TrainConfig,
                 device: torch.device) -> CubeFilters:
    """Precompute the Fourier filters of one tomogram (its tilt range and microscope).

    Parameters
    ----------
    cube_size : int
        Edge ``n`` of the training cubes (voxels).
    microscope : Microscope
        Tilt range, pixel size and optics of the tomogram.
    cfg : TrainConfig
        CTF mode and its settings.
    device : torch.device
        Where the filters live.

    Returns
    -------
    CubeFilters
        Float32 filters on ``device`` (layouts in :class:`CubeFilters`).
    """
    shape = (cube_size,) * 3
    full = wedge.wedge_mask(shape, microscope.tilt_min_deg, microscope.tilt_max_deg, device=device)
    out = CubeFilters(wedge_full=full, wedge=full[..., : cube_size // 2 + 1].contiguous())
    if cfg.ctf_mode is None:
        return out
    flipped = cubes_are_flipped(cfg)
    if flipped and not cfg.is_ctf_flipped:
        out.flip = ctf.ctf_sign(shape, microscope, rfft=True, device=device)
    if cfg.ctf_mode in ("network", "wiener"):
        # the network's output is CTF-corrected in both modes: its wedge filling is modulated
        eff = ctf.effective_ctf(shape, microscope, bfactor=cfg.bfactor,
                                clip_first_peak_mode=cfg.clip_first_peak_mode, rfft=True, device=device)
        out.fill_ctf = eff.abs() if flipped else eff
    if cfg.ctf_mode == "network":
        out.ctf = out.fill_ctf
    elif cfg.ctf_mode == "wiener":
        out.target_filter = ctf.wiener_filter(shape, microscope, snrfalloff=cfg.snrfalloff,
                                              deconvstrength=cfg.deconvstrength,
                                              highpassnyquist=cfg.highpassnyquist,
                                              phaseflipped=flipped, rfft=True, device=device)
    return out


@dataclass
class Batch:
    """One training batch: ``inputs``/``targets`` ``(h * b, 1, n, n, n)`` (half 0 first);
    ``input_mask``/``target_mask`` ``(h * b, 1, n, n, n//2+1)`` for the masked loss (None: plain
    loss); ``output_ctf`` the filter applied to the network output before the loss (network mode)."""
    inputs: torch.Tensor
    targets: torch.Tensor
    input_mask: Optional[torch.Tensor] = None
    target_mask: Optional[torch.Tensor] = None
    output_ctf: Optional[torch.Tensor] = None
    noise_std: Optional[torch.Tensor] = None   # the fill noise s of each cube pair (n2n): (b,) white,
                                               # (b, shells) with fill_noise shells


def _stack(filters: Sequence[CubeFilters], name: str) -> Optional[torch.Tensor]:
    values = [getattr(f, name) for f in filters]
    if values[0] is None:
        return None
    return torch.stack(values).unsqueeze(1)


def _wedges(filters: Sequence[CubeFilters]) -> torch.Tensor:
    """The cubes' wedge masks ``(b, 1, n, n, n')`` (every tomogram has one)."""
    return torch.stack([f.wedge for f in filters]).unsqueeze(1)


def _filter(x: torch.Tensor, filt: Optional[torch.Tensor]) -> torch.Tensor:
    return x if filt is None else fourier.apply_fourier_filter(x, filt)


def _mean_power(spectrum: torch.Tensor, weight: torch.Tensor, n_x: int,
                shells: Optional[torch.Tensor] = None, n_shells: int = 1) -> torch.Tensor:
    """Per-cube mean of ``|spectrum|^2`` over the frequencies selected by ``weight`` (rfft layout,
    each full-spectrum frequency counted once): ``(b,)``; with ``shells`` (the shell index of
    each rfft frequency, ``0 .. n_shells - 1``), the mean of each shell: ``(b, n_shells)``, 0
    where a shell selects nothing."""
    w = weight * rfft_weights(n_x, device=spectrum.device)
    power = (spectrum.real ** 2 + spectrum.imag ** 2) * w
    if shells is None:
        return power.sum(dim=(1, 2, 3, 4)) / w.expand_as(power).sum(dim=(1, 2, 3, 4)).clamp_min(1e-12)
    b = spectrum.shape[0]
    idx = shells.reshape(-1)
    zeros = torch.zeros(b, n_shells, device=spectrum.device, dtype=torch.float32)
    return (zeros.index_add(1, idx, power.reshape(b, -1))
            / zeros.index_add(1, idx, w.expand(spectrum.shape).reshape(b, -1)).clamp_min(1e-12))


def fill_noise_std(v0: torch.Tensor, v1: torch.Tensor, f0: torch.Tensor, f1: torch.Tensor,
                   wedge_rfft: torch.Tensor, spectrum: str = "white") -> torch.Tensor:
    """The fill noise ``s`` of each cube pair (module docstring).

    ``white``: ``s = sqrt(max(0, mean_M |FFT(v0 - v1)|^2 - mean_{1-M} |FFT(f0 - f1)|^2) / 2)``;
    ``shells``: the same means taken shell by shell (shells ``floor(|k| n)``,
    :func:`isonet2core.imaging.fourier.shell_index`), one ``s`` per shell, so the noise put
    into the wedge has the spectrum of the halves' noise (which rises with frequency in a
    back-projected map) instead of its mean level.

    Parameters
    ----------
    v0, v1 : torch.Tensor
        The two halves' cubes ``(b, 1, n, n, n)``.
    f0, f1 : torch.Tensor
        Their fill predictions, same shape.
    wedge_rfft : torch.Tensor
        ``M``, rfft layout ``(b or 1, 1, n, n, n // 2 + 1)``.
    spectrum : str
        ``white`` or ``shells`` (:data:`isonet2core.config.FILL_NOISES`).

    Returns
    -------
    torch.Tensor
        ``(b,)`` (white) or ``(b, n_shells)`` (shells, index = shell), in the cubes'
        (normalised) units.
    """
    if spectrum not in FILL_NOISES:
        raise ValueError(f"spectrum must be one of {FILL_NOISES}, got {spectrum!r}")
    n_x = v0.shape[-1]
    d = torch.fft.rfftn(v0 - v1, dim=DIMS, norm="ortho")
    e = torch.fft.rfftn(f0 - f1, dim=DIMS, norm="ortho")
    if spectrum == "white":
        var = _mean_power(d, wedge_rfft, n_x) - _mean_power(e, 1.0 - wedge_rfft, n_x)
    else:
        shells = fourier.shell_index(v0.shape[-3:], rfft=True, device=v0.device)
        n_shells = int(shells.max()) + 1
        var = (_mean_power(d, wedge_rfft, n_x, shells, n_shells)
               - _mean_power(e, 1.0 - wedge_rfft, n_x, shells, n_shells))
    return (var.clamp_min(0.0) / 2.0).sqrt()


def fill_noise_spectrum(s: torch.Tensor, shape, generator: torch.Generator) -> torch.Tensor:
    """Gaussian noise of :func:`fill_noise_std`'s level, as its (unnormalised) ``rfftn``.

    Parameters
    ----------
    s : torch.Tensor
        ``(b,)`` (white) or ``(b, n_shells)`` (shells).
    shape : tuple of int
        ``(b, 1, n, n, n)`` of the cubes.
    generator : torch.Generator
        Drives the noise.

    Returns
    -------
    torch.Tensor
        ``(b, 1, n, n, n // 2 + 1)`` complex: the ``rfftn`` of real noise whose power in each
        shell is ``s^2`` per voxel (white: everywhere).
    """
    b = shape[0]
    noise = torch.randn(shape, generator=generator, device=s.device)
    if s.dim() == 1:
        return torch.fft.rfftn(s.view(b, 1, 1, 1, 1) * noise, dim=DIMS)
    shells = fourier.shell_index(shape[-3:], rfft=True, device=s.device)
    return torch.fft.rfftn(noise, dim=DIMS) * s[:, shells].unsqueeze(1)


def shaped_noise(shape, mode: str, generator: torch.Generator, device: torch.device) -> torch.Tensor:
    """Unit-variance noise with the spectra of the module docstring.

    ``white``, or back-projection noise ``nofilter``, ``ramp``, ``hamming`` (amplitude a function
    of the radius ``|k_zx|`` perpendicular to the tilt axis y, white along y).

    Parameters
    ----------
    shape : tuple of int
        ``(b, 1, n, n, n)``.
    mode : str
        ``white``, ``nofilter``, ``ramp`` or ``hamming``.
    generator : torch.Generator
        Draws the noise.
    device : torch.device
        Of the result.

    Returns
    -------
    torch.Tensor
        float32 ``shape``, each cube of unit standard deviation.
    """
    noise = torch.randn(shape, generator=generator, device=device)
    if mode == "white":
        return noise
    if mode not in ("nofilter", "ramp", "hamming"):
        raise ValueError(f"noise_mode must be white, nofilter, ramp or hamming, got {mode!r}")
    kz, _, kx = fourier.freq_grid(shape[-3:], rfft=True, device=device)
    k = torch.sqrt(kz * kz + kx * kx).clamp_min(1.0 / max(shape[-3], shape[-1]))   # no 0 at DC
    k = k.clamp(max=0.5)
    if mode == "nofilter":
        filt = k.rsqrt()
    else:
        filt = k.sqrt()
        if mode == "hamming":
            filt = filt * (0.54 + 0.46 * torch.cos(2.0 * math.pi * k))
    shaped = fourier.apply_fourier_filter(noise, filt.expand(shape[-3], shape[-2], -1))
    return _unit_std(shaped)


def _unit_std(x: torch.Tensor) -> torch.Tensor:
    return x / x.std(dim=(1, 2, 3, 4), keepdim=True).clamp_min(1e-12)


def percentile_range(x: torch.Tensor, percent: float = 4.0) -> torch.Tensor:
    """The IsoNet2 program's cube normalisation range: the ``100 - percent`` minus the ``percent``
    percentile of each cube.

    Parameters
    ----------
    x : torch.Tensor
        ``(b, 1, n, n, n)``.
    percent : float
        Lower percentile (0-50).

    Returns
    -------
    torch.Tensor
        ``(b, 1, 1, 1, 1)``.
    """
    flat = x.reshape(x.shape[0], -1).float()
    q = torch.quantile(flat, torch.tensor([percent / 100.0, 1.0 - percent / 100.0],
                                          device=x.device), dim=1)
    return (q[1] - q[0]).view(-1, 1, 1, 1, 1)


def input_noise(cubes: torch.Tensor, wedge_rfft: torch.Tensor, noise_level: float, mode: str,
                generator: torch.Generator) -> torch.Tensor:
    """The synthetic noise of single-map refine, the IsoNet2 program's ``noise_level`` on its
    percentile-normalised cubes.

    :func:`shaped_noise` restricted to what the cube measures (``wedge_rfft``), unit std, times
    ``noise_level`` times each cube's :func:`percentile_range`.

    Parameters
    ----------
    cubes : torch.Tensor
        Filled, rotated cubes ``(b, 1, n, n, n)``.
    wedge_rfft : torch.Tensor
        What each cube measures, rfft layout ``(b or 1, 1, n, n, n // 2 + 1)``.
    noise_level : float
        Relative strength (0: zeros).
    mode : str
        Spectrum (:func:`shaped_noise`).
    generator : torch.Generator
        Draws the noise.

    Returns
    -------
    torch.Tensor
        Shape of ``cubes``.
    """
    noise = shaped_noise(cubes.shape, mode, generator, cubes.device)
    noise = _unit_std(fourier.apply_fourier_filter(noise, wedge_rfft))
    return float(noise_level) * percentile_range(cubes) * noise


def _rotate_pair_masks(filters: Sequence[CubeFilters], rotations) -> torch.Tensor:
    n = filters[0].wedge_full.shape[-1]
    masks = [rot.rotate_masks(f.wedge_full, [r])[0] for f, r in zip(filters, rotations)]
    return torch.stack(masks)[..., : n // 2 + 1].unsqueeze(1).contiguous()


Predictor = Callable[[int, torch.Tensor], torch.Tensor]
"""``predict(half, cubes (b, 1, n, n, n)) -> (b, 1, n, n, n)`` float32, without gradient: the
current network(s) in eval mode (half selects the network of split-halves training)."""


def flip_cubes(cubes: torch.Tensor, filters: Sequence[CubeFilters]) -> torch.Tensor:
    """Phase flip cubes by their tomograms' ``flip`` filters, the first thing done to training
    cubes, so that inputs and targets agree.

    Parameters
    ----------
    cubes : torch.Tensor
        ``(h, b, 1, n, n, n)``.
    filters : sequence of CubeFilters
        One per cube (``b``).

    Returns
    -------
    torch.Tensor
        Flipped cubes, same shape (the cubes themselves when the CTF mode does not flip).
    """
    flip = _stack(filters, "flip")
    if flip is None:
        return cubes
    return torch.stack([fourier.apply_fourier_filter(cubes[h], flip) for h in range(cubes.shape[0])])


def wedge_cubes(cubes: torch.Tensor, filters: Sequence[CubeFilters]) -> torch.Tensor:
    """Cubes with their tomograms' missing wedge removed, ``IFFT(M * FFT(v))``: what the fill
    predictions are made from, as prediction sees data.

    Parameters
    ----------
    cubes : torch.Tensor
        ``(h, b, 1, n, n, n)``.
    filters : sequence of CubeFilters
        One per cube (``b``).

    Returns
    -------
    torch.Tensor
        Same shape.
    """
    m = _wedges(filters)
    return torch.stack([fourier.apply_fourier_filter(cubes[h], m) for h in range(cubes.shape[0])])


def fill_predictions(cubes: torch.Tensor, predict: Predictor, *,
                     shared_network: bool = False) -> torch.Tensor:
    """The no-grad network predictions ``f(v_h)`` of step 1 for the wedge filling.

    Parameters
    ----------
    cubes : torch.Tensor
        ``(h, b, 1, n, n, n)`` normalised cubes of the ``h`` maps, phase flipped
        (:func:`flip_cubes`).
    predict : Predictor
        The current network(s).
    shared_network : bool
        One network serves both halves (no split halves): both are predicted in one batched call
        (twice the batch; on the CPU the deep levels leave the slow batch-of-one path).

    Returns
    -------
    torch.Tensor
        float32 ``(h, b, 1, n, n, n)``.
    """
    n_maps = cubes.shape[0]
    with torch.no_grad():
        if shared_network and n_maps == 2:
            return predict(0, torch.cat([cubes[0], cubes[1]])).float().reshape(cubes.shape)
        return torch.stack([predict(h, cubes[h]).float() for h in range(n_maps)])


def match_moments(x: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    """Shift and scale each cube to the mean and standard deviation of a reference.

    Parameters
    ----------
    x : torch.Tensor
        ``(b, 1, n, n, n)``.
    reference : torch.Tensor
        Same shape.

    Returns
    -------
    torch.Tensor
        Same shape.
    """
    dims = (1, 2, 3, 4)
    mx, sx = x.mean(dim=dims, keepdim=True), x.std(dim=dims, keepdim=True, correction=0)
    mr, sr = reference.mean(dim=dims, keepdim=True), reference.std(dim=dims, keepdim=True, correction=0)
    return (x - mx) / sx.clamp_min(1e-12) * sr + mr


def refine_batch(cubes: torch.Tensor, filters: Sequence[CubeFilters], predictions: torch.Tensor,
                 rotations: Sequence[rot.Rotation], cfg: TrainConfig,
                 generator: torch.Generator) -> Batch:
    """Inputs and targets of refine (isonet2-n2n when ``cubes`` holds two halves, isonet2 for one).

    Parameters
    ----------
    cubes : torch.Tensor
        ``(h, b, 1, n, n, n)`` normalised cubes of the ``h`` maps, phase flipped
        (:func:`flip_cubes`).
    filters : sequence of CubeFilters
        One per cube.
    predictions : torch.Tensor
        :func:`fill_predictions` of these cubes (the trainer may reuse them for several
        rotations, ``TrainConfig.fill_reuse``).
    rotations : sequence of Rotation
        One per cube.
    cfg : TrainConfig
        Method, CTF mode, noise settings.
    generator : torch.Generator
        Drives the noise (drawn anew on every call).

    Returns
    -------
    Batch
        ``h * b`` inputs and targets with their masks.
    """
    n_maps, b = cubes.shape[0], cubes.shape[1]
    if tuple(predictions.shape) != tuple(cubes.shape):
        raise ValueError(f"predictions of shape {tuple(predictions.shape)} do not match the cubes "
                         f"{tuple(cubes.shape)}")
    device = cubes.device
    m = _wedges(filters)                                             # (b, 1, n, n, n')
    c, fill_c, wien = _stack(filters, "ctf"), _stack(filters, "fill_ctf"), _stack(filters, "target_filter")
    v = [cubes[h] for h in range(n_maps)]
    with torch.no_grad():
        f = [predictions[h].float() for h in range(n_maps)]
        if n_maps == 2:
            s = fill_noise_std(v[0], v[1], f[0], f[1], m, cfg.fill_noise)
        else:
            s = torch.zeros(b, device=device)
        filled, measured = [], []
        for h in range(n_maps):
            noise = fill_noise_spectrum(s, f[h].shape, generator)
            fill = torch.fft.rfftn(f[h], dim=DIMS)
            if fill_c is not None:
                fill = fill * fill_c
            fill = fill + noise                                  # detector noise: after the CTF
            spec_v = torch.fft.rfftn(v[h], dim=DIMS)
            measured.append(torch.fft.irfftn(m * spec_v, s=v[h].shape[-3:], dim=DIMS))
            spec = (1.0 - m) * fill + m * spec_v
            filled.append(torch.fft.irfftn(spec, s=v[h].shape[-3:], dim=DIMS))
        rotated = [rot.rotate_volumes(x, rotations, cfg.random_rot_interp) for x in filled]
        target_mask = _rotate_pair_masks(filters, rotations)
        inputs, targets = [], []
        for h in range(n_maps):
            x = fourier.apply_fourier_filter(rotated[h], m)
            if cfg.noise_level > 0:
                x = x + input_noise(rotated[h], m, cfg.noise_level, cfg.noise_mode, generator)
            inputs.append(match_moments(x, measured[h]))
            targets.append(_filter(rotated[1 - h] if n_maps == 2 else rotated[h], wien))
    rep = (lambda t: None if t is None else t.repeat(n_maps, 1, 1, 1, 1))
    return Batch(inputs=torch.cat(inputs), targets=torch.cat(targets), input_mask=rep(m),
                 target_mask=rep(target_mask), output_ctf=rep(c),
                 noise_std=s if n_maps == 2 else None)


def denoise_batch(cubes: torch.Tensor, filters: Sequence[CubeFilters],
                  rotations: Sequence[rot.CubeRotation]) -> Batch:
    """Inputs and targets of Noise2Noise denoising: inputs ``[v0, v1]``, targets ``[v1, v0]``, each
    pair turned by its (wedge-keeping) rotation.

    Parameters
    ----------
    cubes : torch.Tensor
        ``(2, b, 1, n, n, n)`` (even, odd).
    filters : sequence of CubeFilters
        One per cube.
    rotations : sequence of CubeRotation
        One per cube.

    Returns
    -------
    Batch
        ``2 b`` inputs and targets (plain loss: no masks).
    """
    if cubes.shape[0] != 2:
        raise ValueError("denoise needs even and odd cubes")
    c, wien = _stack(filters, "ctf"), _stack(filters, "target_filter")
    with torch.no_grad():
        flipped = flip_cubes(cubes, filters)
        v = [rot.rotate_volumes(flipped[h], rotations) for h in range(2)]
        targets = [_filter(v[1], wien), _filter(v[0], wien)]
    return Batch(inputs=torch.cat(v), targets=torch.cat(targets),
                 output_ctf=None if c is None else c.repeat(2, 1, 1, 1, 1))


def draw_rotations(method: str, n: int, rng: np.random.Generator, random_rot_weight: float,
                   random_rot_angle: str = "haar"):
    """The rotations of a batch.

    Parameters
    ----------
    method : str
        ``n2n`` (denoise) or a refine method.
    n : int
        Number of cubes.
    rng : numpy.random.Generator
        Draws them.
    random_rot_weight : float
        Fraction of arbitrary rotations (refine).
    random_rot_angle : str
        How those are drawn (:func:`isonet2core.training.rotations.random_rotation_matrix`).

    Returns
    -------
    list of Rotation
        Refine: wedge-moving (plus arbitrary) rotations; denoise: wedge-keeping ones.
    """
    if not method_traits(method).fills_wedge:
        return rot.sample_rotations(n, rng, 0.0, rot.WEDGE_KEEPING_ROTATIONS)
    return rot.sample_rotations(n, rng, random_rot_weight, rot.WEDGE_MOVING_ROTATIONS, random_rot_angle)
