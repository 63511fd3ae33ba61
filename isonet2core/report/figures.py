"""Figures of tomograms for the report: orthoslices, Fourier slices and FSC curves.

Pure functions: the ``*_image`` / ``orthoslice`` / ``fourier_xz_slice`` functions return numpy
arrays; the ``*_figure`` functions return matplotlib figures (Agg backend, no display needed)
and :func:`save_figure` writes one as PNG atomically. Nothing here reads files: callers pass
arrays or read-only memory maps (:func:`isonet2core.io.mrcio.open_mrc`), and only the slices a
function needs are read from them.

Conventions: volumes are ``(z, y, x)``; the tilt axis is y, the beam at 0 degrees along z.

* **Orthoslices** (:func:`orthoslice`): the XY plane is ``(y, x)`` at a z index, the XZ plane
  ``(z, x)`` at a y index, the YZ plane ``(z, y)`` at an x index; each is the mean of
  ``n_average`` adjacent slices centred on the index (the central slice by default), which
  averages noise down as users do in IMOD's slicer. Images are shown with the first axis
  pointing up (``origin="lower"``), so z increases upwards in the XZ view, grey scale
  (protein dark as on disk), contrast from the 1st to 99th percentile.
* **Fourier XZ slice** (:func:`fourier_xz_slice`): the log10 amplitude of the (kz, kx) plane,
  fftshifted (DC in the centre). It is the mean power over ALL ky planes of a central
  sub-block of ``n_rows`` y rows (by Parseval along y this equals the mean of the 2D power
  spectra of those XZ rows), which shows the same wedge as the ky = 0 plane (the wedge mask
  does not depend on ky) with far less speckle. Large tomograms are cut to a central crop of
  at most ``max_size`` voxels along z and x; the crop is mean-subtracted and its z and x edges
  tapered (Tukey window, ``taper`` fraction at each edge) so that the box edges do not paint
  a false bright cross along the kz and kx axes (the kz axis lies inside the missing wedge).
  A missing wedge appears as a dark double sector around the kz axis; a corrected map fills it.
* **FSC** (:func:`fsc_figure`): curves against spatial frequency in 1/Angstrom (cycles/voxel
  divided by the pixel size), with the 0.143 threshold; the curves themselves come from
  :mod:`isonet2core.imaging.metrics`.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import List, Mapping, Optional, Sequence, Tuple

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (after selecting the backend)
import numpy as np  # noqa: E402
from matplotlib import ticker  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from isonet2core.io import mrcio  # noqa: E402
from isonet2core.io.atomic import atomic_output  # noqa: E402
from isonet2core.io.output_names import PathLike

PLANES = ("xy", "xz", "yz")
# plane -> (averaged axis of the (z, y, x) volume, labels of the image axes (rows, columns))
_PLANE_AXES = {"xy": (0, ("y", "x")), "xz": (1, ("z", "x")), "yz": (2, ("z", "y"))}
DEFAULT_N_AVERAGE = 5
DEFAULT_PERCENTILES = (1.0, 99.0)
DEFAULT_MAX_SIZE = 256
DEFAULT_N_ROWS = 32
DEFAULT_TAPER = 0.1
FSC_THRESHOLD = 0.143
_DPI = 100


def _check_volume(volume) -> Tuple[int, int, int]:
    shape = tuple(int(s) for s in getattr(volume, "shape", ()))
    if len(shape) != 3 or min(shape) < 1:
        raise ValueError(f"expected a 3-D volume (z, y, x), got shape {shape}")
    return shape  # type: ignore[return-value]


def slab_bounds(n: int, index: Optional[int], n_average: int) -> Tuple[int, int]:
    """The adjacent slices averaged into an orthoslice, shifted to stay inside ``[0, n)``.

    Parameters
    ----------
    n : int
        Axis length.
    index : int, optional
        Centre slice (``n // 2`` when None).
    n_average : int
        Slices averaged.

    Returns
    -------
    tuple of int
        ``[start, stop)``.
    """
    if n_average < 1:
        raise ValueError(f"n_average must be at least 1, got {n_average}")
    index = n // 2 if index is None else int(index)
    if not 0 <= index < n:
        raise ValueError(f"slice index {index} outside an axis of {n} voxels")
    count = min(n_average, n)
    start = min(max(index - count // 2, 0), n - count)
    return start, start + count


def orthoslice(volume, plane: str, *, index: Optional[int] = None,
               n_average: int = DEFAULT_N_AVERAGE) -> np.ndarray:
    """Mean of adjacent slices of a volume; reads only those slices from a memory map.

    Parameters
    ----------
    volume : array_like
        ``(z, y, x)``.
    plane : {"xy", "xz", "yz"}
        ``"xy"`` -> ``(y, x)`` image at z ``index``; ``"xz"`` -> ``(z, x)`` at y ``index``;
        ``"yz"`` -> ``(z, y)`` at x ``index``.
    index : int, optional
        Centre slice (default the central one).
    n_average : int
        Slices averaged.

    Returns
    -------
    numpy.ndarray
        float32 2D image.
    """
    if plane not in _PLANE_AXES:
        raise ValueError(f"plane must be one of {PLANES}, got {plane!r}")
    shape = _check_volume(volume)
    axis = _PLANE_AXES[plane][0]
    start, stop = slab_bounds(shape[axis], index, n_average)
    cut = [slice(None)] * 3
    cut[axis] = slice(start, stop)
    slab = np.asarray(volume[tuple(cut)], dtype=np.float64)
    return slab.mean(axis=axis).astype(np.float32)


def percentile_limits(image, percentiles: Tuple[float, float] = DEFAULT_PERCENTILES
                      ) -> Tuple[float, float]:
    """Display limits at percentiles of the finite values of an image.

    Parameters
    ----------
    image : array_like
        Any shape.
    percentiles : tuple of float
        ``(low, high)`` percentiles.

    Returns
    -------
    tuple of float
        ``(low, high)``, ``high > low`` always (a constant image gets ``(v - 0.5, v + 0.5)``).
    """
    lo_p, hi_p = percentiles
    if not 0.0 <= lo_p < hi_p <= 100.0:
        raise ValueError(f"percentiles must satisfy 0 <= low < high <= 100, got {percentiles}")
    values = np.asarray(image, dtype=np.float64)
    values = values[np.isfinite(values)]
    if values.size == 0:
        raise ValueError("image has no finite values")
    lo, hi = (float(v) for v in np.percentile(values, [lo_p, hi_p]))
    if not hi > lo:
        lo, hi = float(values.min()), float(values.max())
    if not hi > lo:
        lo, hi = lo - 0.5, lo + 0.5
    return lo, hi


def contrast_stretch(image, percentiles: Tuple[float, float] = DEFAULT_PERCENTILES,
                     limits: Optional[Tuple[float, float]] = None) -> np.ndarray:
    """An image mapped linearly to [0, 1]: ``limits`` go to 0 and 1, values outside are clipped.

    Parameters
    ----------
    image : array_like
        Any shape.
    percentiles : tuple of float
        Limits from these percentiles when ``limits`` is None.
    limits : tuple of float, optional
        ``(low, high)`` values.

    Returns
    -------
    numpy.ndarray
        float32, shape of ``image``.
    """
    lo, hi = limits if limits is not None else percentile_limits(image, percentiles)
    out = (np.asarray(image, dtype=np.float64) - lo) / (hi - lo)
    return np.clip(out, 0.0, 1.0).astype(np.float32)


@dataclass(frozen=True)
class FourierSlice:
    """A central (kz, kx) Fourier plane, fftshifted.

    ``log_amplitude``: ``(nz, nx)`` log10 amplitude, DC at ``[nz // 2, nx // 2]``;
    ``kz`` ``(nz,)`` and ``kx`` ``(nx,)``: frequencies of its rows and columns in cycles/voxel
    (increasing; divide by the pixel size in Angstrom for 1/A); ``crop``: the ``(z, y, x)``
    size of the block it was computed from.
    """
    log_amplitude: np.ndarray
    kz: np.ndarray
    kx: np.ndarray
    crop: Tuple[int, int, int]

    def sector_mean(self, angle_min_deg: float, angle_max_deg: float, *,
                    freq_min: float = 0.05, freq_max: float = 0.45) -> float:
        """Mean log10 amplitude over a sector of the slice.

        Parameters
        ----------
        angle_min_deg, angle_max_deg : float
            Points whose angle ``degrees(atan(kz / kx))`` lies in this range (the wedge convention;
            the kz axis is +-90).
        freq_min, freq_max : float
            Radius range (cycles/voxel).

        Returns
        -------
        float
            The mean; ``nan`` for an empty sector.
        """
        kz = self.kz[:, None]
        kx = self.kx[None, :]
        with np.errstate(divide="ignore", invalid="ignore"):
            alpha = np.where(kx == 0, 90.0, np.degrees(np.arctan(kz / np.where(kx == 0, 1, kx))))
        radius = np.sqrt(kz * kz + kx * kx)
        inside = (alpha >= angle_min_deg) & (alpha <= angle_max_deg) & \
                 (radius >= freq_min) & (radius <= freq_max)
        if not inside.any():
            raise ValueError(f"no Fourier point between {angle_min_deg} and {angle_max_deg} degrees "
                             f"at radius {freq_min}..{freq_max} cycles/voxel")
        return float(self.log_amplitude[np.broadcast_to(inside, self.log_amplitude.shape)].mean())


def central_crop(shape: Sequence[int], max_size: Optional[int]) -> Tuple[slice, slice, slice]:
    """Slices of the central block of at most ``max_size`` voxels along each axis.

    Parameters
    ----------
    shape : sequence of int
        ``(z, y, x)``.
    max_size : int, optional
        Largest edge (None: whole axes).

    Returns
    -------
    tuple of slice
        ``(z, y, x)`` slices.
    """
    if max_size is not None and max_size < 1:
        raise ValueError(f"max_size must be positive, got {max_size}")
    out = []
    for n in shape:
        size = n if max_size is None else min(n, int(max_size))
        start = (n - size) // 2
        out.append(slice(start, start + size))
    return tuple(out)  # type: ignore[return-value]


def _tukey(n: int, fraction: float) -> np.ndarray:
    """Tukey window of length ``n``: flat, with cosine tapers over ``fraction`` of ``n`` at
    each end (``fraction = 0``: all ones)."""
    width = int(round(fraction * n))
    window = np.ones(n)
    if width > 0 and n > 2:
        ramp = 0.5 - 0.5 * np.cos(np.pi * (np.arange(width) + 0.5) / width)
        window[:width] = ramp
        window[n - width:] = ramp[::-1]
    return window


def fourier_xz_slice(volume, *, max_size: Optional[int] = DEFAULT_MAX_SIZE,
                     n_rows: int = DEFAULT_N_ROWS, taper: float = DEFAULT_TAPER) -> FourierSlice:
    """log10 amplitude of the central (kz, kx) Fourier plane of a volume.

    The power is averaged over all ky planes of the central block of ``n_rows`` y rows (at most;
    equal to the mean 2D power spectrum of those XZ rows), after cutting z and x to the central
    ``max_size`` voxels, subtracting the block mean and tapering the z and x edges with a Tukey
    window. Reads only that block from a memory map. The module documentation says why.

    Parameters
    ----------
    volume : array_like
        ``(z, y, x)``.
    max_size : int, optional
        z and x cut to this many central voxels (None: whole axes).
    n_rows : int
        y rows averaged.
    taper : float
        Fraction of each axis tapered at each end, 0 to 0.5 (0: none).

    Returns
    -------
    FourierSlice
        The image and its frequency axes.
    """
    shape = _check_volume(volume)
    if n_rows < 1:
        raise ValueError(f"n_rows must be at least 1, got {n_rows}")
    if not 0.0 <= taper <= 0.5:
        raise ValueError(f"taper must be in [0, 0.5], got {taper}")
    cz, _, cx = central_crop(shape, max_size)
    y0, y1 = slab_bounds(shape[1], None, n_rows)
    block = np.asarray(volume[cz, y0:y1, cx], dtype=np.float64)
    block = block - block.mean()
    nz, ny, nx = block.shape
    block *= _tukey(nz, taper)[:, None, None] * _tukey(nx, taper)[None, None, :]
    spectra = np.fft.fft2(block, axes=(0, 2))
    power = np.mean(spectra.real ** 2 + spectra.imag ** 2, axis=1)
    power = np.fft.fftshift(power)
    floor = max(float(power.max()), 1e-300) * 1e-16
    log_amplitude = 0.5 * np.log10(np.maximum(power, floor))
    kz = np.fft.fftshift(np.fft.fftfreq(nz))
    kx = np.fft.fftshift(np.fft.fftfreq(nx))
    return FourierSlice(log_amplitude.astype(np.float32), kz, kx, (nz, ny, nx))


# ---- matplotlib figures ------------------------------------------------------------------
def _extent(n_rows: int, n_cols: int, pixel_size_a: float) -> Tuple[float, float, float, float]:
    """imshow extent in nm of an image of ``n_rows x n_cols`` voxels (origin lower left)."""
    nm = pixel_size_a / 10.0
    return (0.0, n_cols * nm, 0.0, n_rows * nm)


def orthoslice_figure(volumes: Sequence[Tuple[str, object]], pixel_size_a: float, *,
                      n_average: int = DEFAULT_N_AVERAGE,
                      percentiles: Tuple[float, float] = DEFAULT_PERCENTILES,
                      title: Optional[str] = None) -> Figure:
    """Central XY (top row) and XZ (bottom row) orthoslices, one column per volume.

    Axes in nm, grey scale, contrast per volume from ``percentiles`` of its two slices (so that a
    map and its restoration are each shown at their best).

    Parameters
    ----------
    volumes : sequence of (str, array_like)
        ``(label, volume (z, y, x))``, one shape for all.
    pixel_size_a : float
        Angstrom per voxel.
    n_average : int
        Slices averaged per orthoslice.
    percentiles : tuple of float
        Contrast limits.
    title : str, optional
        Figure title.

    Returns
    -------
    matplotlib.figure.Figure
        The caller saves and closes it.
    """
    if not volumes:
        raise ValueError("orthoslice_figure: no volumes given")
    shapes = {_check_volume(v) for _, v in volumes}
    if len(shapes) != 1:
        raise ValueError(f"orthoslice_figure: volumes differ in shape {sorted(shapes)}")
    nz, ny, nx = shapes.pop()
    n = len(volumes)
    col_width = 4.2
    fig_height = col_width * (ny + nz) / nx + 1.3
    fig = plt.figure(figsize=(max(col_width * n + 0.4, 6.5), fig_height), dpi=_DPI,
                     layout="constrained")
    grid = fig.add_gridspec(2, n, height_ratios=[ny, nz])
    zs, ys = slab_bounds(nz, None, n_average), slab_bounds(ny, None, n_average)
    for col, (label, volume) in enumerate(volumes):
        xy = orthoslice(volume, "xy", n_average=n_average)
        xz = orthoslice(volume, "xz", n_average=n_average)
        limits = percentile_limits(np.concatenate([xy.ravel(), xz.ravel()]), percentiles)
        for row, (image, plane, bounds) in enumerate(((xy, "xy", zs), (xz, "xz", ys))):
            ax = fig.add_subplot(grid[row, col])
            ax.imshow(image, cmap="gray", origin="lower", vmin=limits[0], vmax=limits[1],
                      extent=_extent(image.shape[0], image.shape[1], pixel_size_a), interpolation="antialiased")
            rows_label, cols_label = _PLANE_AXES[plane][1]
            fixed = "z" if plane == "xy" else "y"
            ax.set_title(f"{label}\n{plane.upper()}, {fixed} {bounds[0]}-{bounds[1] - 1} (mean)",
                         fontsize=9)
            ax.set_xlabel(f"{cols_label} (nm)", fontsize=8)
            ax.set_ylabel(f"{rows_label} (nm)", fontsize=8)
            ax.tick_params(labelsize=7)
    fig.suptitle(title or f"Orthoslices (pixel size {pixel_size_a:g} \u00c5; "
                          f"mean of {n_average} slices)", fontsize=10)
    return fig


def fourier_figure(slices: Sequence[Tuple[str, FourierSlice]], pixel_size_a: float, *,
                   tilt_range_deg: Optional[Tuple[float, float]] = None,
                   percentiles: Tuple[float, float] = (1.0, 99.5),
                   title: Optional[str] = None) -> Figure:
    """Side-by-side Fourier XZ slices, one shared colour scale (log10 amplitude, colour bar) so that
    a filled wedge is visible as such.

    Axes kx and kz in 1/A (aspect equal, so wedge angles are true); with ``tilt_range_deg`` the
    tilt-range limits are drawn as dashed lines through DC (between them along kx lies the
    measured region; the missing wedge surrounds the kz axis).

    Parameters
    ----------
    slices : sequence of (str, FourierSlice)
        ``(label, slice)``.
    pixel_size_a : float
        Angstrom per voxel.
    tilt_range_deg : tuple of float, optional
        ``(tilt_min, tilt_max)`` degrees.
    percentiles : tuple of float
        Colour limits over all slices.
    title : str, optional
        Figure title.

    Returns
    -------
    matplotlib.figure.Figure
        The caller saves and closes it.
    """
    if not slices:
        raise ValueError("fourier_figure: no Fourier slices given")
    values = np.concatenate([s.log_amplitude.ravel() for _, s in slices])
    vmin, vmax = percentile_limits(values, percentiles)
    n = len(slices)
    fig, axes = plt.subplots(1, n, figsize=(3.7 * n + 1.0, 4.0), dpi=_DPI, squeeze=False,
                             layout="constrained")
    image = None
    for ax, (label, fslice) in zip(axes[0], slices):
        kz = fslice.kz / pixel_size_a
        kx = fslice.kx / pixel_size_a
        dz = (kz[1] - kz[0]) if kz.size > 1 else 1.0 / pixel_size_a
        dx = (kx[1] - kx[0]) if kx.size > 1 else 1.0 / pixel_size_a
        extent = (kx[0] - dx / 2, kx[-1] + dx / 2, kz[0] - dz / 2, kz[-1] + dz / 2)
        image = ax.imshow(fslice.log_amplitude, cmap="viridis", origin="lower", vmin=vmin, vmax=vmax,
                          extent=extent, aspect="equal", interpolation="nearest")
        if tilt_range_deg is not None:
            radius = 0.75 / pixel_size_a   # beyond the corners; clipped to the panel
            for angle in tilt_range_deg:
                c, s = math.cos(math.radians(angle)), math.sin(math.radians(angle))
                ax.plot([-radius * c, radius * c], [-radius * s, radius * s], ls="--", lw=0.8,
                        color="white", alpha=0.8)
            ax.set_xlim(extent[0], extent[1])
            ax.set_ylim(extent[2], extent[3])
        ax.set_title(label, fontsize=9)
        ax.set_xlabel("kx (1/\u00c5)", fontsize=8)
        ax.set_ylabel("kz (1/\u00c5)", fontsize=8)
        ax.tick_params(labelsize=7)
    assert image is not None      # at least one map was drawn
    bar = fig.colorbar(image, ax=list(axes[0]), shrink=0.85)
    bar.set_label("log10 amplitude", fontsize=8)
    bar.ax.tick_params(labelsize=7)
    crop = slices[0][1].crop
    wedge = "" if tilt_range_deg is None else \
        f"; dashed: tilt range {tilt_range_deg[0]:g} to {tilt_range_deg[1]:g}\u00b0"
    fig.suptitle(title or f"Fourier XZ slice (central {crop[0]}x{crop[2]} z-x crop, power "
                          f"averaged over ky of {crop[1]} central y rows){wedge}", fontsize=9)
    return fig


@dataclass(frozen=True)
class FSCCurve:
    """One FSC curve: ``freq`` in cycles/voxel, ``fsc`` values, ``resolution_a`` where it
    crosses the threshold (None when it does not); ``color`` (a matplotlib colour, default:
    the next of the cycle) and ``linestyle`` let related curves share a colour."""
    label: str
    freq: np.ndarray
    fsc: np.ndarray
    resolution_a: Optional[float] = None
    color: Optional[str] = None
    linestyle: str = "-"


def resolution_label(resolution_a: Optional[float], fsc, threshold: float = FSC_THRESHOLD) -> str:
    """A resolution for tables and legends.

    Parameters
    ----------
    resolution_a : float, optional
        From :func:`isonet2core.imaging.metrics.fsc_resolution` (Angstrom).
    fsc : array_like
        The curve.
    threshold : float
        The criterion.

    Returns
    -------
    str
        ``"23.4"``; ``"<= 16.0"`` when the curve never falls below ``threshold`` (the value is
        then the Nyquist limit); an em dash when there is no finite resolution.
    """
    if resolution_a is None or not np.isfinite(resolution_a):
        return "\u2014"
    values = np.asarray(fsc, dtype=np.float64)
    values = values[np.isfinite(values)]
    if values.size and not np.any(values < threshold):
        return f"\u2264 {resolution_a:.1f}"
    return f"{resolution_a:.1f}"


def fsc_figure(curves: Sequence[FSCCurve], pixel_size_a: float, *,
               threshold: float = FSC_THRESHOLD, title: Optional[str] = None) -> Figure:
    """FSC curves against spatial frequency (1/A, top axis: resolution in A) with the threshold
    line; each legend entry gives the curve's resolution at the threshold.

    Parameters
    ----------
    curves : sequence of FSCCurve
        Label, frequencies (cycles/voxel) and values.
    pixel_size_a : float
        Angstrom per voxel.
    threshold : float
        The criterion drawn.
    title : str, optional
        Figure title.

    Returns
    -------
    matplotlib.figure.Figure
        The caller saves and closes it.
    """
    if not curves:
        raise ValueError("fsc_figure: no FSC curves given")
    fig, ax = plt.subplots(figsize=(6.4, 4.2), dpi=_DPI, layout="constrained")
    nyquist = 0.5 / pixel_size_a
    for curve in curves:
        freq = np.asarray(curve.freq, dtype=np.float64) / pixel_size_a
        res = resolution_label(curve.resolution_a, curve.fsc, threshold) + " \u00c5"
        ax.plot(freq, np.asarray(curve.fsc, dtype=np.float64), lw=1.5, color=curve.color,
                ls=curve.linestyle, label=f"{curve.label} ({res})")
    ax.axhline(threshold, color="grey", ls="--", lw=0.8, label=f"FSC = {threshold:g}")
    ax.axhline(0.0, color="black", lw=0.5)
    ax.set_xlim(0.0, nyquist)
    ax.set_ylim(min(-0.1, ax.get_ylim()[0]), 1.02)
    ax.set_xlabel("spatial frequency (1/\u00c5)")
    ax.set_ylabel("FSC")
    top = ax.twiny()          # the same frequency axis, labelled with resolution 1/f
    top.set_xlim(ax.get_xlim())
    ticks = [t for t in ax.get_xticks() if 0 < t <= nyquist * 1.0001]
    top.set_xticks(ticks)
    top.set_xticklabels([f"{1.0 / t:.0f}" for t in ticks])
    top.set_xlabel("resolution (\u00c5)", fontsize=8)
    top.tick_params(labelsize=7)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8, loc="upper right")
    ax.set_title(title or f"Fourier shell correlation (Nyquist {2 * pixel_size_a:g} \u00c5)", fontsize=10)
    return fig


def figure_to_array(fig: Figure) -> np.ndarray:
    """The rendered figure as an image.

    Parameters
    ----------
    fig : matplotlib.figure.Figure
        The figure.

    Returns
    -------
    numpy.ndarray
        uint8 RGBA ``(height, width, 4)``.
    """
    fig.canvas.draw()
    return np.asarray(fig.canvas.buffer_rgba(), dtype=np.uint8).copy()  # type: ignore[attr-defined]


def save_figure(fig: Figure, png_path: PathLike) -> Path:
    """Write a figure as PNG atomically (temporary file in the same folder, then ``os.replace``; the
    folder is created when missing) and close it.

    Parameters
    ----------
    fig : matplotlib.figure.Figure
        The figure.
    png_path : str or Path
        The file.

    Returns
    -------
    Path
        ``Path(png_path)``.
    """
    target = Path(png_path)
    try:
        with atomic_output(target) as tmp:
            fig.savefig(tmp, format="png", dpi=_DPI)
    finally:
        plt.close(fig)
    return target


_CURVES = (("loss", "total loss"), ("n2n_loss", "Noise2Noise term (measured region)"),
           ("mw_loss", "missing-wedge term (unweighted)"))


def plot_loss_history(history: Sequence[Mapping], png_path: PathLike) -> Path:
    """Plot the loss curves of a training history.

    Parameters
    ----------
    history : sequence of mapping
        One dict per epoch (``epoch``, ``loss``, ``n2n_loss``, ``mw_loss``).
    png_path : str or Path
        The PNG written.

    Returns
    -------
    Path
        ``Path(png_path)``.

    Raises
    ------
    ValueError
        The history is empty.
    """
    if not history:
        raise ValueError("empty loss history: nothing to plot")
    png_path = Path(png_path)
    epochs = [int(h["epoch"]) for h in history]
    fig, ax = plt.subplots(figsize=(6, 4), dpi=100)
    try:
        for key, label in _CURVES:
            values = [h.get(key) for h in history]
            if all(v is not None and v > 0 for v in values):
                ax.plot(epochs, values, marker="o", markersize=3, label=label)
        ax.set_xlabel("epoch")
        ax.set_ylabel("loss (normalised units)")
        ax.set_yscale("log")
        ax.yaxis.set_major_formatter(ticker.FormatStrFormatter("%.3g"))  # plain text, no mathtext
        ax.yaxis.set_minor_formatter(ticker.NullFormatter())
        ax.grid(True, alpha=0.3)
        ax.legend()
        fig.tight_layout()
        with atomic_output(png_path) as tmp:
            fig.savefig(tmp, format="png")
    finally:
        plt.close(fig)
    return png_path


def save_slices(map_path: Path, pixel_size_a: float) -> List[Path]:
    """The IsoNet2 program's ``save_slices``: ``<map stem>_slices.png`` (central orthoslices) and
    ``<map stem>_spectrum.png`` (central Fourier XZ slice) beside the map.

    Parameters
    ----------
    map_path : Path
        The map.
    pixel_size_a : float
        Angstrom per voxel (axes).

    Returns
    -------
    list of Path
        The two PNG files.
    """
    volume = mrcio.read_mrc(map_path)[0]
    stem = map_path.stem
    return [save_figure(orthoslice_figure([(stem, volume)], pixel_size_a), map_path.with_name(stem + "_slices.png")),
            save_figure(fourier_figure([(stem, fourier_xz_slice(volume))], pixel_size_a),
                        map_path.with_name(stem + "_spectrum.png"))]
