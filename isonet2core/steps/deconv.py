"""CTF deconvolution of tomograms with the IsoNet1/Warp Wiener-like filter.

``deconvolve(volume, microscope, cfg)`` filters a ``(z, y, x)`` tomogram with
:func:`isonet2core.imaging.ctf.wiener_filter` (``W = T / (T^2 + 1/SSNR)``, the STAR's own amplitude
contrast, ``|T|`` for phase-flipped data) and rescales the result to the input's mean and
standard deviation. ``W`` is positive at low frequency, so the output keeps the input's
protein-dark contrast.

Whole-volume mode filters the volume with one FFT (periodic boundaries, as IsoNet1).
Chunked mode (``cfg.chunk_size``) tiles the volume into cubes of ``chunk_size`` voxels, each
filtered with a margin of ``round(chunk_size * overlap_rate / 2)`` voxels on every side (the
IsoNet1 crop size ``chunk_size * (1 + overlap_rate)``), taking the margin beyond the volume
edges periodically like the whole-volume FFT, and keeps only the chunk centres. The
mean/std rescaling is applied once to the stitched volume, so the two modes agree up to the
part of the filter's point-spread function that reaches beyond the margin (measured in
tests/core/test_deconv.py). ``cfg.ncpus`` sets torch's intra-op threads for the duration (and
the workers of ``scipy.fft`` in the streamed mode).

Bounded memory (:func:`deconvolve_file`, what ``deconv`` runs). :func:`plan_deconv` picks, per
tomogram, within the memory the step may use (``memory_gb``, :func:`isonet2core.memory.memory_budget`,
less what the process already holds):

* ``whole``: the whole-volume filter in memory, when its peak (about ``WHOLE_BYTES_PER_VOXEL``
  bytes a voxel) fits in ``min(budget, STREAM_BYTES)``;
* ``streamed``: otherwise, the same whole-volume filter computed out of core, so its result is
  the whole-volume result up to float32 rounding (8e-6 of its standard deviation; chunks with
  margins are no substitute, the filter's point-spread function is long: margins of 7 voxels
  leave differences of 17 % of the output's standard deviation, 14 voxels 3.5 %). The 3-D FFT is
  separable: pass 1 reads slabs of z planes (positioned reads,
  :class:`isonet2core.steps.step_inputs.MapPlanes`), Fourier transforms them along y and x
  (``scipy.fft.rfft2``) and writes the half spectrum to a scratch file beside the output
  (:mod:`isonet2core.io.scratch`, ``z * y * (x // 2 + 1)`` complex64: about the size of the
  float32 tomogram), accumulating the input's mean and standard deviation; pass 2 reads blocks
  of y rows across every z, transforms them along z, multiplies them by ``W`` (computed for
  those rows only, :func:`isonet2core.imaging.ctf.wiener_of_freq`), takes the output's mean and
  standard deviation from the spectrum (its DC term; Parseval), transforms back along z and
  writes them back; pass 3 reads slabs of z planes, transforms them back along y and x,
  rescales them and streams them into the output MRC (:func:`isonet2core.io.mrcio.stream_mrc`,
  atomic). Blocks are as large as ``min(budget, STREAM_BYTES)`` allows; larger ones are not
  faster;
* ``chunked``: an explicit ``chunk_size`` (IsoNet1's mode above), streamed by rows of chunks
  (the chunks' planes with their margins read at once), the unscaled output in a scratch file
  until the rescaling.

A tomogram whose smallest blocks do not fit the budget is refused before any work, naming the
file, the budget and the minimum.
"""
from __future__ import annotations

import contextlib
import functools
import itertools
import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Generator, Iterable, Iterator, List, Literal, Optional, Sequence, Tuple

import numpy as np
import scipy.fft
import torch

from isonet2core import memory
from isonet2core.config import DeconvConfig, Microscope
from isonet2core.device import cpu_threads
from isonet2core.imaging import ctf, fourier
from isonet2core.io import mrcio, output_names, star
from isonet2core.io.output_names import PathLike
from isonet2core.io.scratch import ScratchArray, scratch_array
from isonet2core.steps import step_inputs

logger = logging.getLogger(__name__)


@contextlib.contextmanager
def _torch_threads(n: int) -> Iterator[None]:
    previous = torch.get_num_threads()
    torch.set_num_threads(cpu_threads(max(1, int(n))))
    try:
        yield
    finally:
        torch.set_num_threads(previous)


class _Filter:
    """Applies the Wiener filter of one microscope to blocks, caching filters per shape."""

    def __init__(self, microscope: Microscope, cfg: DeconvConfig):
        self._microscope = microscope
        self._cfg = cfg
        self._cache: Dict[Tuple[int, int, int], torch.Tensor] = {}

    def __call__(self, block: np.ndarray) -> np.ndarray:
        nz, ny, nx = block.shape
        shape = (int(nz), int(ny), int(nx))
        if shape not in self._cache:
            self._cache[shape] = ctf.wiener_filter(
                shape, self._microscope, snrfalloff=self._cfg.snrfalloff,
                deconvstrength=self._cfg.deconvstrength, highpassnyquist=self._cfg.highpassnyquist,
                phaseflipped=self._cfg.phaseflipped, rfft=True, dtype=torch.float32)
        t = torch.from_numpy(np.ascontiguousarray(block, dtype=np.float32))
        return fourier.apply_fourier_filter(t, self._cache[shape]).numpy()


def chunk_slices(shape: Sequence[int], chunk_size: int) -> List[Tuple[slice, slice, slice]]:
    """Core regions of the chunks: cubes of ``chunk_size`` tiling a volume (the last ones shorter).

    Parameters
    ----------
    shape : sequence of int
        ``(z, y, x)``.
    chunk_size : int
        Chunk edge (voxels).

    Returns
    -------
    list of tuple of slice
        ``(z, y, x)`` slices.
    """
    per_axis = [[slice(s, min(s + chunk_size, n)) for s in range(0, n, chunk_size)] for n in shape]
    return [tuple(c) for c in itertools.product(*per_axis)]  # type: ignore[misc]


def _padded_block(volume: np.ndarray, core: Tuple[slice, ...], margin: int) -> np.ndarray:
    """The core region grown by ``margin`` on every side, wrapping around the volume edges."""
    index = [np.arange(s.start - margin, s.stop + margin) % n for s, n in zip(core, volume.shape)]
    return np.asarray(volume[np.ix_(*index)], dtype=np.float32)


def _check_inputs(volume, microscope: Microscope, cfg: DeconvConfig) -> None:
    if not isinstance(microscope, Microscope):
        raise ValueError(f"expected a config.Microscope, got {type(microscope).__name__}")
    microscope.validate()
    if not isinstance(cfg, DeconvConfig):
        raise ValueError(f"expected a config.DeconvConfig, got {type(cfg).__name__}")
    cfg.validate()
    if getattr(volume, "ndim", None) != 3:
        raise ValueError(f"expected a volume (z, y, x), got shape {getattr(volume, 'shape', None)}")


def deconvolve(volume: np.ndarray, microscope: Microscope,
               cfg: DeconvConfig = DeconvConfig()) -> np.ndarray:
    """Wiener-deconvolve a tomogram; the output keeps the input's mean and standard deviation and
    its protein-dark contrast.

    Parameters
    ----------
    volume : numpy.ndarray
        ``(z, y, x)``, array or read-only memory map (chunked mode reads it chunk by chunk).
    microscope : Microscope
        Pixel size, defocus, voltage, Cs and amplitude contrast of the tomogram.
    cfg : DeconvConfig
        snrfalloff, deconvstrength, highpassnyquist, phaseflipped, chunk_size, overlap_rate,
        ncpus.

    Returns
    -------
    numpy.ndarray
        float32 ``(z, y, x)``.

    Raises
    ------
    ValueError
        A non-3D, non-finite or constant volume.
    """
    _check_inputs(volume, microscope, cfg)
    mean = float(np.mean(volume, dtype=np.float64))
    std = float(np.std(volume, dtype=np.float64))
    if not np.isfinite(mean) or not np.isfinite(std):
        raise ValueError("the volume to deconvolve has NaN or infinite voxels")
    if std == 0:
        raise ValueError("the volume to deconvolve is constant (no contrast)")
    apply = _Filter(microscope, cfg)
    with _torch_threads(cfg.ncpus):
        if cfg.chunk_size is None or all(n <= cfg.chunk_size for n in volume.shape):
            out = apply(np.asarray(volume, dtype=np.float32))
        else:
            margin = int(round(cfg.chunk_size * cfg.overlap_rate / 2))
            out = np.empty(volume.shape, dtype=np.float32)
            cores = chunk_slices(volume.shape, cfg.chunk_size)
            logger.info("deconvolving %d chunks of %d voxels (margin %d)", len(cores),
                        cfg.chunk_size, margin)
            for core in cores:
                filtered = apply(_padded_block(volume, core, margin))
                inner = tuple(slice(margin, margin + (s.stop - s.start)) for s in core)
                out[core] = filtered[inner]
    out_mean = float(np.mean(out, dtype=np.float64))
    out_std = float(np.std(out, dtype=np.float64))
    if out_std == 0:
        raise ValueError("deconvolution removed all contrast (check the CTF parameters)")
    out -= np.float32(out_mean)
    out *= np.float32(std / out_std)
    out += np.float32(mean)
    return out


STREAM_BYTES = memory.STREAM_BYTES
"""Working set of the streamed passes when the budget allows more (larger blocks are not faster)."""
WHOLE_BYTES_PER_VOXEL = 32
"""Peak bytes per voxel of the whole-volume filter beyond the read (the statistics, the FFT and its
product; measured 7.3 x the float32 tomogram, 29 bytes a voxel, on 160x1024x1024)."""

Mode = Literal["whole", "streamed", "chunked"]


@dataclass(frozen=True)
class DeconvPlan:
    """How :func:`deconvolve_file` works through one tomogram (:func:`plan_deconv`).

    ``mode``: ``whole``, ``streamed`` or ``chunked`` (module documentation); ``shape``: the
    tomogram's ``(z, y, x)``; ``block_planes``: z planes per block of the y/x passes
    (streamed) or per row of chunks (chunked); ``block_rows``: y rows per block of the z pass
    (streamed); ``peak_bytes``: the estimated peak of its arrays; ``scratch_bytes``: the size of
    its scratch file (0: none).
    """
    mode: Mode
    shape: Tuple[int, int, int]
    block_planes: int
    block_rows: int
    peak_bytes: int
    scratch_bytes: int


def _read_bytes(stored_itemsize: int, n_maps: int) -> int:
    """Bytes per voxel of reading planes (:class:`step_inputs.MapPlanes`: the stored values and
    their float32 copy, per map averaged)."""
    return n_maps * (4 + int(stored_itemsize))


def _streamed_costs(shape: Tuple[int, int, int], read: int):
    """``(per_plane, per_row, fixed_planes, fixed_rows)``: bytes of the streamed passes, per z plane
    of the y/x passes and per y row of the z pass, and their fixed parts."""
    nz, ny, nx = shape
    plane, half = ny * nx, ny * (nx // 2 + 1)
    # pass 1: the read, the half spectrum and scipy's copy of it; pass 3: the spectrum read, its
    # copy, the float32 planes; both: a float64 plane of the statistics
    # (calibrated with ru_maxrss on 160x1024x1024: 536 MiB for 31 planes and 269 rows)
    per_plane = max(plane * read + half * 20, half * 20 + plane * 4)
    # the block, the transform's copy, W and the power (float32), per element of (z, 1, x // 2 + 1)
    per_row = nz * (nx // 2 + 1) * 28
    fixed_rows = nz * (nx // 2 + 1) * 64        # W of one row in float64, with its temporaries
    return per_plane, per_row, plane * 8, fixed_rows


def _chunk_row_bytes(shape: Tuple[int, int, int], chunk: int, margin: int, read: int) -> int:
    """Peak bytes of one row of chunks: the planes with their margins, the output row, one block
    and its transforms, the cached filters."""
    nz, ny, nx = shape
    planes = min(chunk, nz) + 2 * margin
    block = planes * (min(chunk, ny) + 2 * margin) * (min(chunk, nx) + 2 * margin)
    return planes * ny * nx * (read + 4) + min(chunk, nz) * ny * nx * 4 + block * 48 + ny * nx * 8


def plan_deconv(shape: Sequence[int], cfg: DeconvConfig, *, work_bytes: Optional[int],
                stored_itemsize: int = 4, n_maps: int = 1, name: str = "volume",
                budget: Optional[str] = None) -> DeconvPlan:
    """How to deconvolve a tomogram within a memory budget (modes: module documentation).

    Parameters
    ----------
    shape : sequence of int
        ``(z, y, x)``.
    cfg : DeconvConfig
        ``chunk_size`` and ``overlap_rate`` decide the chunked mode.
    work_bytes : int or None
        Bytes the step's arrays may take (the budget less what the process holds); None:
        unknown (only ``STREAM_BYTES`` bounds the blocks).
    stored_itemsize : int
        Bytes per voxel of the input files' dtype.
    n_maps : int
        Maps averaged into the input (2: even and odd halves).
    name : str
        Names the tomogram (and its file) in the refusal.
    budget : str, optional
        The budget in words, for the refusal.

    Returns
    -------
    DeconvPlan
        The mode, its block sizes and its estimated peak.

    Raises
    ------
    ValueError
        Naming the tomogram, the budget and the minimum: even the smallest blocks of the mode
        do not fit ``work_bytes``.
    """
    nz, ny, nx = (int(n) for n in shape)
    shape3 = (nz, ny, nx)
    read = _read_bytes(stored_itemsize, n_maps)
    target = STREAM_BYTES if work_bytes is None else max(0, min(int(work_bytes), STREAM_BYTES))
    voxels = nz * ny * nx

    def refuse(minimum: int, how: str) -> ValueError:
        left = "nothing" if work_bytes is None or work_bytes <= 0 else memory.format_bytes(work_bytes)
        return ValueError(f"{name}: deconvolving its {nz}x{ny}x{nx} (z, y, x) voxels {how} needs at "
                          f"least {memory.format_bytes(minimum)}, but the memory budget "
                          f"{budget or 'given'} leaves {left} for it; give a larger memory_gb or "
                          "run where more memory is free")

    if cfg.chunk_size is not None and any(n > cfg.chunk_size for n in shape3):
        margin = int(round(cfg.chunk_size * cfg.overlap_rate / 2))
        peak = _chunk_row_bytes(shape3, cfg.chunk_size, margin, read)
        if work_bytes is not None and peak > work_bytes:
            raise refuse(peak, f"in rows of chunks of {cfg.chunk_size} voxels (chunk_size; leave it "
                               "empty for the exact streamed filter)")
        return DeconvPlan("chunked", shape3, min(cfg.chunk_size, nz), 0, peak, voxels * 4)
    whole = voxels * (WHOLE_BYTES_PER_VOXEL + read)
    if whole <= target:
        return DeconvPlan("whole", shape3, nz, ny, whole, 0)
    per_plane, per_row, fixed_planes, fixed_rows = _streamed_costs(shape3, read)
    minimum = max(per_plane + fixed_planes, per_row + fixed_rows)
    if work_bytes is not None and minimum > work_bytes:
        raise refuse(minimum, "in blocks of one z plane and one y row")
    planes = int(min(nz, max(1, (target - fixed_planes) // per_plane)))
    rows = int(min(ny, max(1, (target - fixed_rows) // per_row)))
    peak = max(planes * per_plane + fixed_planes, rows * per_row + fixed_rows)
    return DeconvPlan("streamed", shape3, planes, rows, peak, nz * ny * (nx // 2 + 1) * 8)


def _check_moments(moments: mrcio.Moments, name: str) -> Tuple[float, float]:
    mean, std = moments.mean, moments.std
    if not (math.isfinite(mean) and math.isfinite(std)):
        raise ValueError(f"{name}: the volume to deconvolve has NaN or infinite voxels")
    if std == 0:
        raise ValueError(f"{name}: the volume to deconvolve is constant (no contrast)")
    return mean, std


def _rescaled(block: np.ndarray, out_mean: float, out_std: float, mean: float, std: float) -> np.ndarray:
    """The output's rescaling to the input's mean and std, in place (as :func:`deconvolve`)."""
    block -= np.float32(out_mean)
    block *= np.float32(std / out_std)
    block += np.float32(mean)
    return block


def _streamed_planes(volume, microscope: Microscope, cfg: DeconvConfig, plan: DeconvPlan,
                     spectrum: ScratchArray, name: str) -> Generator[Tuple[int, np.ndarray], None, None]:
    """The whole-volume filter out of core (module documentation), z plane blocks in order."""
    nz, ny, nx = plan.shape
    nxh = nx // 2 + 1
    workers = cpu_threads(cfg.ncpus)
    moments = mrcio.Moments()
    for z0 in range(0, nz, plan.block_planes):                       # pass 1: y and x
        planes = volume[z0:min(z0 + plan.block_planes, nz)]
        moments.add(planes)
        spectrum.write(z0, scipy.fft.rfft2(planes, workers=workers))
        del planes
    mean, std = _check_moments(moments, name)
    kz, ky, kx = fourier.freq_grid(plan.shape, rfft=True, dtype=torch.float64)
    weights = np.full(nxh, 2.0)                                      # Parseval over the half spectrum
    weights[0] = 1.0
    if nx % 2 == 0:
        weights[-1] = 1.0
    total, sum_sq = 0.0, 0.0
    for y0 in range(0, ny, plan.block_rows):                         # pass 2: z, the filter
        y1 = min(y0 + plan.block_rows, ny)
        block = scipy.fft.fft(spectrum.read_rows(y0, y1), axis=0, overwrite_x=True, workers=workers)
        # W row by row in one thread: small tensors, where torch's thread pool costs more than it
        # gives (50x slower beside another busy process; 19 ns a voxel in one thread)
        with _torch_threads(1):
            for j in range(y0, y1):
                kyj = ky[:, j:j + 1, :]
                freq = torch.sqrt(kz * kz + kyj * kyj + kx * kx)[:, 0, :]
                block[:, j - y0, :] *= ctf.wiener_of_freq(
                    freq, microscope, snrfalloff=cfg.snrfalloff, deconvstrength=cfg.deconvstrength,
                    highpassnyquist=cfg.highpassnyquist, phaseflipped=cfg.phaseflipped).to(torch.float32).numpy()
        if y0 == 0:
            total = float(block[0, 0, 0].real)
        power = np.square(block.real)
        power += np.square(block.imag)
        sum_sq += float(np.dot(power.sum(axis=(0, 1), dtype=np.float64), weights))
        del power
        spectrum.write_rows(y0, scipy.fft.ifft(block, axis=0, overwrite_x=True, workers=workers))
        del block
    n = float(nz) * ny * nx
    out_mean = total / n
    out_std = math.sqrt(max(sum_sq / (n * n) - out_mean * out_mean, 0.0))
    if out_std == 0:
        raise ValueError(f"{name}: deconvolution removed all contrast (check the CTF parameters)")
    for z0 in range(0, nz, plan.block_planes):                       # pass 3: back along y and x
        z1 = min(z0 + plan.block_planes, nz)
        planes = scipy.fft.irfft2(spectrum.read(z0, z1), s=(ny, nx), workers=workers)
        yield z0, _rescaled(planes.astype(np.float32, copy=False), out_mean, out_std, mean, std)


def _wrapped_planes(volume, indices: np.ndarray) -> np.ndarray:
    """The z planes ``indices`` (increasing runs, wrapping around) read run by run into one array."""
    out = np.empty((len(indices),) + tuple(volume.shape[1:]), dtype=np.float32)
    start = 0
    while start < len(indices):
        stop = start + 1
        while stop < len(indices) and indices[stop] == indices[stop - 1] + 1:
            stop += 1
        out[start:stop] = volume[int(indices[start]):int(indices[stop - 1]) + 1]
        start = stop
    return out


def _chunked_planes(volume, microscope: Microscope, cfg: DeconvConfig, plan: DeconvPlan,
                    unscaled: ScratchArray, name: str) -> Generator[Tuple[int, np.ndarray], None, None]:
    """The chunked mode of :func:`deconvolve` by rows of chunks, z plane blocks in order."""
    nz, ny, nx = plan.shape
    chunk = int(cfg.chunk_size)   # type: ignore[arg-type]   # the chunked mode has one
    margin = int(round(chunk * cfg.overlap_rate / 2))
    apply = _Filter(microscope, cfg)
    moments, out_moments = mrcio.Moments(), mrcio.Moments()
    cores = [c for c in chunk_slices(plan.shape, chunk) if c[0].start == 0]
    for z0 in range(0, nz, chunk):
        z1 = min(z0 + chunk, nz)
        planes = _wrapped_planes(volume, np.arange(z0 - margin, z1 + margin) % nz)
        moments.add(planes[margin:margin + z1 - z0])
        row = np.empty((z1 - z0, ny, nx), dtype=np.float32)
        for _, ys, xs in cores:
            index = [np.arange(len(planes))] + [np.arange(s.start - margin, s.stop + margin) % n
                                                for s, n in ((ys, ny), (xs, nx))]
            filtered = apply(np.asarray(planes[np.ix_(*index)], dtype=np.float32))
            row[:, ys, xs] = filtered[margin:margin + z1 - z0, margin:margin + ys.stop - ys.start,
                                      margin:margin + xs.stop - xs.start]
            del filtered
        del planes
        out_moments.add(row)
        unscaled.write(z0, row)
        del row
    mean, std = _check_moments(moments, name)
    out_mean, out_std = out_moments.mean, out_moments.std
    if out_std == 0:
        raise ValueError(f"{name}: deconvolution removed all contrast (check the CTF parameters)")
    for z0 in range(0, nz, chunk):
        yield z0, _rescaled(unscaled.read(z0, min(z0 + chunk, nz)), out_mean, out_std, mean, std)


def deconvolve_file(sources: Sequence[PathLike], target: PathLike, microscope: Microscope,
                    cfg: DeconvConfig, *, voxel_size_a: float, plan: Optional[DeconvPlan] = None,
                    protect: Iterable[PathLike] = ()) -> Path:
    """Deconvolve a map (or the mean of two half maps) into a float32 MRC file, within the memory
    of ``plan`` (modes: module documentation); written atomically, never over an input.

    Parameters
    ----------
    sources : sequence of str or Path
        One map or the two halves (checked by :func:`step_inputs.check_maps`).
    target : str or Path
        The output map; the scratch file lies beside it while it is computed.
    microscope : Microscope
        The tomogram's acquisition.
    cfg : DeconvConfig
        Filter settings.
    voxel_size_a : float
        Voxel size written to the header (Angstrom).
    plan : DeconvPlan, optional
        From :func:`plan_deconv` for this map's shape (default: planned here with no budget but
        ``STREAM_BYTES``).
    protect : iterable of str or Path
        Further paths the target must not be.

    Returns
    -------
    Path
        ``Path(target)``.

    Raises
    ------
    ValueError
        Naming the map: a plan for another shape, a non-finite or constant volume.
    """
    reader = step_inputs.open_map([Path(p) for p in sources])
    _check_inputs(reader, microscope, cfg)
    plan = step_inputs.map_plan(reader, plan, functools.partial(plan_deconv, cfg=cfg), "deconvolution")
    protected = [*reader.paths, *protect]
    logger.info("%s: deconvolving %s voxels (%s mode%s)", reader.name, "x".join(map(str, plan.shape)),
                plan.mode, "" if plan.mode == "whole" else
                f", blocks of {plan.block_planes} z planes" + (f" and {plan.block_rows} y rows"
                                                              if plan.mode == "streamed" else ""))
    with _torch_threads(cfg.ncpus):
        if plan.mode == "whole":
            return mrcio.write_mrc(target, deconvolve(reader[:], microscope, cfg), voxel_size_a,
                                   protect=protected)
        mrcio.check_not_input(target, protected)
        spectrum = plan.mode == "streamed"
        scratch_shape = plan.shape[:2] + (plan.shape[2] // 2 + 1,) if spectrum else plan.shape
        with scratch_array(target, scratch_shape, np.complex64 if spectrum else np.float32) as scratch:
            produce = _streamed_planes if spectrum else _chunked_planes
            planes = produce(reader, microscope, cfg, plan, scratch, reader.name)
            with contextlib.closing(planes), \
                    mrcio.stream_mrc(target, plan.shape, voxel_size_a, protect=protected) as out:
                for _, block in planes:
                    out.write(block)
    return Path(target)


def deconvolve_star(star_file: PathLike, cfg: DeconvConfig, output_dir: PathLike, *,
                    input_column: str = star.TOMO_NAME,
                    tomo_idx: Optional[Sequence[int]] = None) -> List[Tuple[str, Path]]:
    """``deconv``: deconvolve the tomograms of a STAR file with their microscope parameters.

    Every input is checked before the first FFT, and so is the memory: each tomogram is planned
    (:func:`plan_deconv`) within ``cfg.memory_gb`` (:func:`isonet2core.memory.work_budget`), a
    tomogram that cannot fit is refused, and the largest scratch file must fit on the disk
    beside the outputs. Each map is then written by :func:`deconvolve_file`, and after every
    tomogram its row of the STAR gets ``rlnDeconvTomoName`` and the settings in
    ``rlnSnrFalloff`` / ``rlnDeconvStrength`` (:func:`star.update_rows`: locked, re-read,
    written atomically).

    Parameters
    ----------
    star_file : path
        The tomograms STAR.
    cfg : DeconvConfig
        Filter settings and memory budget.
    output_dir : path
        Folder of ``<rlnTomoName>_deconv.mrc``.
    input_column : str
        STAR column of the maps; ``rlnTomoName``: the tomogram, else the mean of its halves.
    tomo_idx : sequence of int, optional
        rlnIndex values of the tomograms; None: all.

    Returns
    -------
    list of (str, Path)
        rlnTomoName and the file written, per tomogram.

    Raises
    ------
    ValueError, FileNotFoundError, OSError
        Before any work: an input that cannot be used, a tomogram whose smallest blocks do not
        fit the memory budget, no disk space for the outputs and the scratch file.
    """
    cfg.validate()
    table = star.TomogramsTable.read(star_file)
    jobs = step_inputs.plan_map_jobs(table, tomo_idx, input_column,
                              lambda name: output_names.deconv_path(output_dir, name),
                              star.DECONV)
    microscopes = {job.row: table.microscope(job.row, needs_defocus="deconv") for job in jobs}  # first
    for job in jobs:
        px, header = microscopes[job.row].pixel_size_a, job.infos[0].voxel_size_a
        if header > 0 and abs(header - px) > 0.01 * px:
            logger.warning("%s: header voxel size %.4g A differs from the STAR pixel size %.4g A; "
                           "using the STAR's", job.sources[0], header, px)
    plans, budget = step_inputs.plan_memory(jobs, cfg.memory_gb, functools.partial(plan_deconv, cfg=cfg))
    logger.info("deconv: memory budget %s", budget or "unknown")
    Path(output_dir).mkdir(parents=True, exist_ok=True)   # an unusable folder fails here, not after work
    for job in jobs:
        microscope = microscopes[job.row]
        deconvolve_file(job.sources, job.target, microscope, cfg, voxel_size_a=microscope.pixel_size_a,
                        plan=plans[job.row])
        star.update_rows(star_file, {(job.name, table.index(job.row)): {
            star.DECONV: job.target, star.SNR_FALLOFF: cfg.snrfalloff,
            star.DECONV_STRENGTH: cfg.deconvstrength}})
        logger.info("deconv: %s -> %s", job.name, job.target)
    return [(job.name, job.target) for job in jobs]
