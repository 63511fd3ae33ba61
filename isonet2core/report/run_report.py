"""The report of a run (figures: matplotlib, Agg backend, no display needed).

``make_report(star_file, output_dir, cfg, model_dir=, tomo_idx=, ground_truth_dir=)`` (what
``isonet2 report`` runs): per tomogram, orthoslices and Fourier XZ slices of the raw map beside
the corrected/denoised maps (figures from :mod:`isonet2core.report.figures`), FSC curves of the even
and odd halves and, for synthetic data, against the ground truth (numbers from
:mod:`isonet2core.imaging.metrics`); the loss curves, settings and previews of the training run; all
assembled by :func:`isonet2core.report.page.write_report` into ``report.html`` and its Markdown twin ``report.md`` beside
the PNGs.
"""
from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np

from isonet2core import __version__
from isonet2core.config import ReportConfig
from isonet2core.imaging import metrics
from isonet2core.io import input_names, mrcio, star
from isonet2core.io.output_names import CONFIG_FILE, HISTORY_FILE, PREVIEW_DIR, PREVIEW_NAME, PathLike, safe_name
from isonet2core.report import figures
from isonet2core.report.page import (
    ReportImage,
    ReportSection,
    ReportTable,
    write_report,
)

log = logging.getLogger(__name__)


MAX_PREVIEWS = 5                       # training previews shown (evenly chosen epochs)


# ---- what the report shows of each tomogram ------------------------------------------------
@dataclass(frozen=True)
class OutputMaps:
    """A restored map of a tomogram: ``kind`` ``"corrected"`` or ``"denoised"``, its file and
    its half maps (``None`` unless both halves are listed)."""
    kind: str
    path: Path
    halves: Optional[Tuple[Path, Path]] = None


@dataclass(frozen=True)
class TomogramMaps:
    """The map files of one tomogram that the report reads (resolved, checked paths).

    ``raw``: ``rlnTomoReconstructedTomogram`` (``None`` when only halves are listed: the raw
    map shown is then the mean of the halves); ``raw_halves``: the even/odd maps;
    ``outputs``: the corrected and/or denoised maps; ``ground_truth``: a map of the same grid
    (synthetic data) or ``None``; ``shape`` ``(z, y, x)`` shared by all of them.
    """
    name: str
    index: int
    pixel_size_a: float
    tilt_range_deg: Tuple[float, float]
    shape: Tuple[int, int, int]
    raw: Optional[Path]
    raw_halves: Optional[Tuple[Path, Path]]
    outputs: Tuple[OutputMaps, ...]
    ground_truth: Optional[Path] = None


_OUTPUT_COLUMNS = (("corrected", star.CORRECTED, star.CORRECTED_HALF1, star.CORRECTED_HALF2),
                   ("denoised", star.DENOISED, star.DENOISED_HALF1, star.DENOISED_HALF2))


def tomogram_maps(table: star.TomogramsTable, row: int,
                  ground_truth_dir: Optional[PathLike] = None) -> TomogramMaps:
    """Resolve and check (headers only) the maps of one STAR row.

    Parameters
    ----------
    table : star.TomogramsTable
        The tomograms STAR.
    row : int
        0-based position.
    ground_truth_dir : str or Path, optional
        Where the ground truth is looked up: the file name of its full map, then of its halves,
        then ``<stem without even/odd tag>.mrc`` and ``<rlnTomoName>.mrc``.

    Returns
    -------
    TomogramMaps
        Raw, halves, restored maps and ground truth.

    Raises
    ------
    ValueError
        Naming the tomogram: neither a full map nor both halves, maps of different shapes, or no
        ground truth found.
    FileNotFoundError
        Missing files.
    """
    name = table.tomo_name(row)
    microscope = table.microscope(row)

    def pair(c1: str, c2: str) -> Optional[Tuple[Path, Path]]:
        p1, p2 = table.path(row, c1), table.path(row, c2)
        return (p1, p2) if p1 is not None and p2 is not None else None

    raw, raw_halves = table.path(row, star.TOMO_FULL), pair(star.TOMO_HALF1, star.TOMO_HALF2)
    if raw is None and raw_halves is None:
        raise ValueError(f"tomogram {name}: no {star.TOMO_FULL} and no pair "
                         f"{star.TOMO_HALF1}/{star.TOMO_HALF2} in {table.source}")
    outputs = []
    for kind, column, c1, c2 in _OUTPUT_COLUMNS:
        path = table.path(row, column)
        if path is not None:
            outputs.append(OutputMaps(kind, path, pair(c1, c2)))
    gt = None
    if ground_truth_dir is not None:
        gt = _find_ground_truth(Path(ground_truth_dir), name, [raw, *(raw_halves or ())])
    files = [p for p in (raw, *(raw_halves or ()), gt) if p is not None]
    for out in outputs:
        files += [out.path, *(out.halves or ())]
    shapes = {p: mrcio.read_header(p).shape for p in files}
    if len(set(shapes.values())) != 1:
        listing = ", ".join(f"{p.name} {'x'.join(map(str, s))}" for p, s in shapes.items())
        raise ValueError(f"tomogram {name}: its maps differ in shape (z x y x x): {listing}")
    return TomogramMaps(name=name, index=table.index(row), pixel_size_a=microscope.pixel_size_a,
                        tilt_range_deg=(microscope.tilt_min_deg, microscope.tilt_max_deg),
                        shape=next(iter(shapes.values())), raw=raw, raw_halves=raw_halves,
                        outputs=tuple(outputs), ground_truth=gt)


def _find_ground_truth(folder: Path, name: str, maps: Sequence[Optional[Path]]) -> Path:
    if not folder.is_dir():
        raise FileNotFoundError(f"ground-truth folder not found: {folder}")
    candidates: List[Path] = []
    for p in maps:
        if p is not None:
            candidates += [folder / p.name, folder / f"{input_names.tomo_name_from_path(p)}.mrc"]
    candidates.append(folder / f"{name}.mrc")
    for c in candidates:
        if c.is_file():
            return c
    tried = ", ".join(dict.fromkeys(c.name for c in candidates))
    raise ValueError(f"tomogram {name}: no ground-truth map in {folder} (tried {tried})")


class _MeanMap:
    """The voxel-wise mean of same-shape maps (memory maps), read lazily: indexing reads only
    the requested part of each map. Shape ``(z, y, x)``."""

    def __init__(self, maps: Sequence[np.ndarray]):
        self.maps = list(maps)
        self.shape = tuple(self.maps[0].shape)

    def __getitem__(self, key):
        return sum(np.asarray(m[key], dtype=np.float32) for m in self.maps) / len(self.maps)


@dataclass(frozen=True)
class TrainingRun:
    """What ``refine``/``denoise`` wrote in ``model_dir`` that the report shows: the loss
    history (one dict per epoch), the configuration (``config.json``, or ``None``) and the
    preview maps per tomogram name, ``[(epoch, path), ...]`` in epoch order."""
    model_dir: Path
    history: Tuple[Mapping, ...]
    config: Optional[Mapping]
    previews: Mapping[str, Tuple[Tuple[int, Path], ...]]


def load_training_run(model_dir: PathLike) -> TrainingRun:
    """Read ``loss_history.json`` (required), ``config.json`` and ``preview/*_epochNNN.mrc``
    (optional; headers checked) of a training output folder.

    Parameters
    ----------
    model_dir : str or Path
        The folder.

    Returns
    -------
    TrainingRun
        History, settings, previews.

    Raises
    ------
    FileNotFoundError
        The folder or the history is missing.
    ValueError
        Naming the file when it is not a training history, not JSON or not an MRC map.
    """
    folder = Path(model_dir)
    if not folder.is_dir():
        raise FileNotFoundError(f"model folder not found: {folder}")
    history_path = folder / HISTORY_FILE
    if not history_path.is_file():
        raise FileNotFoundError(f"{history_path} not found: --model_dir must be the output folder "
                                "of isonet2 refine or denoise")
    history = _read_json(history_path)
    if not isinstance(history, list) or not history or not all(
            isinstance(h, dict) and isinstance(h.get("epoch"), int)
            and isinstance(h.get("loss"), (int, float)) for h in history):
        raise ValueError(f"{history_path} is not a loss history: expected a non-empty list of "
                         "{\"epoch\": int, \"loss\": number, ...} objects")
    config_path = folder / CONFIG_FILE
    config = _read_json(config_path) if config_path.is_file() else None
    if config is not None and not isinstance(config, dict):
        raise ValueError(f"{config_path}: expected a JSON object")
    previews: Dict[str, List[Tuple[int, Path]]] = {}
    if (folder / PREVIEW_DIR).is_dir():
        for path in sorted((folder / PREVIEW_DIR).iterdir()):
            match = PREVIEW_NAME.match(path.name)
            if match and path.is_file():
                mrcio.read_header(path)       # a damaged preview fails now, not mid-report
                previews.setdefault(match["name"], []).append((int(match["epoch"]), path))
    return TrainingRun(folder, tuple(history), config,
                       {k: tuple(sorted(v)) for k, v in previews.items()})


def _read_json(path: Path):
    try:
        with open(path, encoding="utf-8") as fh:
            return json.load(fh)
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path} is not valid JSON: {exc}") from None


def make_report(star_file: PathLike, output_dir: PathLike, cfg: Optional[ReportConfig] = None, *,
                model_dir: Optional[PathLike] = None, tomo_idx: Optional[Sequence[int]] = None,
                ground_truth_dir: Optional[PathLike] = None) -> Dict[str, Path]:
    """Write the report of a run: PNGs and ``report.html`` / ``report.md``.

    Per tomogram: central XY and XZ orthoslices of the raw map (``rlnTomoReconstructedTomogram``,
    else the mean of the halves) beside the corrected/denoised maps (and the ground truth), their
    Fourier XZ slices (log10 amplitude: the missing wedge and how it was filled), the FSC between
    the even and odd halves of the raw and of the restored maps, and with ``ground_truth_dir``
    the FSC and missing-wedge FSC against the ground truth; a table of the numbers (Pearson, PSNR,
    FSC resolutions, from :mod:`isonet2core.imaging.metrics`). With ``model_dir``: the loss curves, the
    last epoch's losses, the training settings and the preview maps. Numbers and Fourier slices
    use the central ``cfg.crop_size`` voxels of each axis. All inputs are checked (headers,
    files) before any figure is made; inputs are only read.

    Parameters
    ----------
    star_file : str or Path
        The tomograms STAR.
    output_dir : str or Path
        Where the pages and PNGs go.
    cfg : ReportConfig, optional
        Slices averaged, crop size, FSC threshold.
    model_dir : str or Path, optional
        Output folder of refine/denoise.
    tomo_idx : sequence of int, optional
        rlnIndex values (default all).
    ground_truth_dir : str or Path, optional
        Ground-truth maps.

    Returns
    -------
    dict
        ``{"html": path, "md": path}``, the pages written.
    """
    cfg = (cfg or ReportConfig()).validate()
    table = star.TomogramsTable.read(star_file)
    rows = table.rows_for(tomo_idx)
    tomograms = [tomogram_maps(table, r, ground_truth_dir) for r in rows]
    training = load_training_run(model_dir) if model_dir is not None else None
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)

    gt = ground_truth_dir is not None
    headers = ["tomogram", "map", f"even/odd FSC {cfg.fsc_threshold:g} (\u00c5)",
               "missing-wedge power (%)"]
    if gt:
        headers += ["Pearson vs GT", "PSNR vs GT (dB)", f"FSC {cfg.fsc_threshold:g} vs GT (\u00c5)",
                    f"wedge FSC {cfg.fsc_threshold:g} vs GT (\u00c5)", "mean wedge FSC vs GT"]
    number_rows: List[Tuple[str, ...]] = []
    tomo_sections: List[ReportSection] = []
    for maps in tomograms:
        log.info("report: tomogram %s", maps.name)
        section, numbers = _tomogram_section(maps, out, cfg)
        tomo_sections.append(section)
        number_rows += numbers
    crop = "whole volumes" if cfg.crop_size is None else \
        f"the central {cfg.crop_size} voxels of each axis (at most)"
    summary = ReportSection(
        "Summary",
        f"STAR file {Path(star_file)}; {len(tomograms)} tomogram(s); isonet2core {__version__}; "
        f"written {datetime.now().strftime('%Y-%m-%d %H:%M')}. Numbers are computed on {crop}; "
        f"resolutions are where the FSC first falls below {cfg.fsc_threshold:g} (\u2264: it stays "
        "above up to Nyquist; \u2014: it starts below). The missing-wedge power is the share of "
        "the Fourier power (DC excluded) inside the missing wedge of the tilt range: near 0 for a "
        "raw reconstruction, larger when the wedge has been filled. The even/odd FSC of a restored map compares the restorations of the two "
        "halves; unless independent networks restored them (split_halves), it is optimistic."
        + (" GT: ground truth; the wedge FSC is restricted to the missing-wedge region of Fourier "
           "space, where the raw map has no signal." if gt else ""),
        ReportTable(tuple(headers), tuple(number_rows)))
    sections = [summary, *tomo_sections]
    if training is not None:
        sections += _training_sections(training, out, cfg, {m.name: m for m in tomograms})
    title = f"IsoNet2 report: {Path(star_file).name}"
    return write_report(out, title, sections, formats=cfg.formats)


def _fmt(value: Optional[float], digits: int) -> str:
    if value is None or not np.isfinite(value):
        return "\u2014"
    return f"{value:.{digits}f}"


def _tomogram_section(maps: TomogramMaps, out: Path, cfg: ReportConfig
                      ) -> Tuple[ReportSection, List[Tuple[str, ...]]]:
    """The section (figures written into ``out``) and the numbers-table rows of one tomogram."""
    stem = safe_name(maps.name)
    raw: Any
    if maps.raw is not None:
        raw_label, raw = "raw", mrcio.open_mrc(maps.raw)
    else:
        raw_label, raw = "raw (mean of halves)", _MeanMap([mrcio.open_mrc(p) for p in maps.raw_halves or ()])
    shown = [(raw_label, raw)] + [(o.kind, mrcio.open_mrc(o.path)) for o in maps.outputs]
    truth = mrcio.open_mrc(maps.ground_truth) if maps.ground_truth is not None else None
    panels = shown + ([("ground truth", truth)] if truth is not None else [])
    images = _map_figures(maps, panels, stem, out, cfg)
    crop = figures.central_crop(maps.shape, cfg.crop_size)

    def block(volume) -> np.ndarray:
        return np.asarray(volume[crop], dtype=np.float32)

    # one colour per map in every figure: C0 raw, C1, C2 the restored maps
    eo_curves = [_even_odd_curve("raw even vs odd", maps.raw_halves, "C0", block, maps, cfg)]
    eo_curves += [_even_odd_curve(f"{o.kind} half 1 vs half 2", o.halves, f"C{i + 1}", block, maps, cfg)
                  for i, o in enumerate(maps.outputs)]
    curves = [c for c in eo_curves if c is not None]
    if curves:
        name = f"{stem}_fsc_even_odd.png"
        figures.save_figure(figures.fsc_figure(
            curves, maps.pixel_size_a, threshold=cfg.fsc_threshold,
            title=f"{maps.name}: FSC between the even and odd halves"), out / name)
        images.append(ReportImage(name, "FSC between the maps of the even and odd halves; the legend "
                                        f"gives where each curve falls below {cfg.fsc_threshold:g}."))
    truth_block = block(truth) if truth is not None else None
    rows: List[Tuple[str, ...]] = []
    gt_curves: List[figures.FSCCurve] = []
    for i, ((label, volume), eo) in enumerate(zip(shown, eo_curves)):
        row, gt = _numbers(maps, label, block(volume), eo, truth_block, f"C{i}", cfg)
        rows.append(row)
        gt_curves += gt
    if gt_curves:
        name = f"{stem}_fsc_ground_truth.png"
        figures.save_figure(figures.fsc_figure(
            gt_curves, maps.pixel_size_a, threshold=cfg.fsc_threshold,
            title=f"{maps.name}: FSC against the ground truth"), out / name)
        images.append(ReportImage(name, "FSC against the ground truth over all of Fourier space and "
                                        "restricted to the missing wedge (where the raw map has no "
                                        "signal: a restored map that recovers it rises above 0)."))
    return ReportSection(f"Tomogram {maps.name}", _files_text(maps), images=tuple(images)), rows


def _map_figures(maps: TomogramMaps, panels: Sequence[Tuple[str, Any]], stem: str, out: Path,
                 cfg: ReportConfig) -> List[ReportImage]:
    """Orthoslices and Fourier XZ slices of the maps (``panels``: label, volume (z, y, x))."""
    px = maps.pixel_size_a
    name = f"{stem}_orthoslices.png"
    figures.save_figure(figures.orthoslice_figure(
        panels, px, n_average=cfg.n_average, percentiles=cfg.percentiles,
        title=f"{maps.name}: central orthoslices (pixel size {px:g} \u00c5, mean of {cfg.n_average} slices)"),
        out / name)
    images = [ReportImage(name, "Central XY (top) and XZ (bottom) slices, grey scale as on disk "
                                "(protein dark). The XZ view shows the elongation along z that "
                                "the missing wedge causes in the raw map.")]
    name = f"{stem}_fourier.png"
    slices = [(label, figures.fourier_xz_slice(v, max_size=cfg.crop_size)) for label, v in panels]
    figures.save_figure(figures.fourier_figure(
        slices, px, tilt_range_deg=maps.tilt_range_deg,
        title=f"{maps.name}: Fourier XZ slice, log10 amplitude (tilt range {maps.tilt_range_deg[0]:g} "
              f"to {maps.tilt_range_deg[1]:g}\u00b0, dashed)"), out / name)
    images.append(ReportImage(name, "Log-amplitude (kz, kx) Fourier slices, power averaged over ky. "
                                    "The dark double sector around the kz axis is the missing wedge "
                                    "of the raw map; a corrected map fills it."))
    return images


def _even_odd_curve(label: str, halves, color: str, block, maps: TomogramMaps,
                    cfg: ReportConfig) -> Optional[figures.FSCCurve]:
    """The FSC between two half maps (central crops), or None without halves."""
    if halves is None:
        return None
    freq, curve = metrics.fsc(block(mrcio.open_mrc(halves[0])), block(mrcio.open_mrc(halves[1])))
    res = metrics.fsc_resolution(freq, curve, maps.pixel_size_a, threshold=cfg.fsc_threshold)
    return figures.FSCCurve(label, freq, curve, res, color)


def _numbers(maps: TomogramMaps, label: str, vol: np.ndarray, eo: Optional[figures.FSCCurve],
             truth: Optional[np.ndarray], color: str, cfg: ReportConfig
             ) -> Tuple[Tuple[str, ...], List[figures.FSCCurve]]:
    """One map's row of the numbers table and, with a ground truth, its FSC curves against it
    (whole Fourier space and the missing wedge only)."""
    px, tilt = maps.pixel_size_a, maps.tilt_range_deg
    row = [maps.name, label,
           figures.resolution_label(eo.resolution_a, eo.fsc, cfg.fsc_threshold) if eo else "n/a",
           _fmt(100.0 * metrics.wedge_power_fraction(vol, *tilt), 1)]
    if truth is None:
        return tuple(row), []
    freq, curve = metrics.fsc(vol, truth)
    res = metrics.fsc_resolution(freq, curve, px, threshold=cfg.fsc_threshold)
    wfreq, wcurve = metrics.wedge_fsc(vol, truth, *tilt)
    wres = metrics.fsc_resolution(wfreq, wcurve, px, threshold=cfg.fsc_threshold)
    row += [_fmt(metrics.pearson(vol, truth), 3), _fmt(metrics.psnr(vol, truth), 2),
            figures.resolution_label(res, curve, cfg.fsc_threshold),
            figures.resolution_label(wres, wcurve, cfg.fsc_threshold),
            _fmt(metrics.mean_fsc(wfreq, wcurve), 3)]
    return tuple(row), [figures.FSCCurve(f"{label} vs GT", freq, curve, res, color),
                        figures.FSCCurve(f"{label} vs GT, missing wedge only", wfreq, wcurve, wres,
                                         color, "--")]


def _files_text(maps: TomogramMaps) -> str:
    files = [f"raw: {maps.raw or ' + '.join(str(p) for p in maps.raw_halves or ())}"]
    files += [f"{o.kind}: {o.path}" for o in maps.outputs]
    if maps.ground_truth is not None:
        files.append(f"ground truth: {maps.ground_truth}")
    if not maps.outputs:
        files.append("no corrected or denoised map in the STAR file (run isonet2 predict)")
    return (f"rlnIndex {maps.index}; {maps.shape[0]} x {maps.shape[1]} x {maps.shape[2]} voxels "
            f"(z, y, x) at {maps.pixel_size_a:g} \u00c5; tilt range {maps.tilt_range_deg[0]:g} to "
            f"{maps.tilt_range_deg[1]:g}\u00b0. " + "; ".join(files) + ".")


def _training_sections(run: TrainingRun, out: Path, cfg: ReportConfig,
                       tomograms: Mapping[str, TomogramMaps]) -> List[ReportSection]:
    """Loss curves, last-epoch numbers, settings and previews of a training run."""
    history = run.history
    name = "training_loss.png"
    figures.plot_loss_history(history, out / name)
    last = history[-1]
    headers = ("epochs", "final loss", "Noise2Noise term", "missing-wedge term", "learning rate",
               "training time (min)")
    seconds = sum(float(h.get("seconds") or 0.0) for h in history)
    row = (str(last["epoch"]), _fmt(last.get("loss"), 5), _fmt(last.get("n2n_loss"), 5),
           _fmt(last.get("mw_loss"), 5), _fmt(last.get("learning_rate"), 6), _fmt(seconds / 60.0, 1))
    sections = [ReportSection(
        "Training", f"Output folder {run.model_dir}. Losses per epoch in normalised units "
                    "(the missing-wedge term is shown unweighted).",
        ReportTable(headers, (row,)),
        (ReportImage(name, "Loss per epoch (log scale)."),))]
    settings = (run.config or {}).get("config")
    if isinstance(settings, dict) and settings:
        sections.append(ReportSection(
            "Training settings", f"From {run.model_dir / CONFIG_FILE}.",
            ReportTable(("setting", "value"), tuple((str(k), json.dumps(v)) for k, v in settings.items()))))
    for tomo, previews in run.previews.items():
        chosen = _spread(previews, MAX_PREVIEWS)
        maps = tomograms.get(tomo)
        px = mrcio.read_header(chosen[-1][1]).voxel_size_a or (maps.pixel_size_a if maps else 0.0)
        if not px > 0:
            log.warning("report: previews of %s have no voxel size; not shown", tomo)
            continue
        volumes = [(f"epoch {epoch}", mrcio.open_mrc(path)) for epoch, path in chosen]
        if len({v.shape for _, v in volumes}) != 1:
            raise ValueError(f"preview maps of {tomo} in {run.model_dir / PREVIEW_DIR} differ in shape")
        stem = safe_name(tomo)
        ortho, fourier = f"preview_{stem}_orthoslices.png", f"preview_{stem}_fourier.png"
        figures.save_figure(figures.orthoslice_figure(
            volumes, px, n_average=cfg.n_average, percentiles=cfg.percentiles,
            title=f"{tomo}: previews during training (pixel size {px:g} \u00c5)"), out / ortho)
        figures.save_figure(figures.fourier_figure(
            [(label, figures.fourier_xz_slice(v, max_size=cfg.crop_size)) for label, v in volumes], px,
            tilt_range_deg=maps.tilt_range_deg if maps else None,
            title=f"{tomo}: Fourier XZ slices of the previews, log10 amplitude"), out / fourier)
        sections.append(ReportSection(
            f"Training previews: {tomo}",
            f"{len(chosen)} of {len(previews)} preview maps ({run.model_dir / PREVIEW_DIR}).",
            images=(ReportImage(ortho, "Orthoslices of the tomogram predicted by the network during "
                                       "training."),
                    ReportImage(fourier, "Their Fourier XZ slices: the missing wedge fills as "
                                         "training proceeds."))))
    return sections


def _spread(items: Sequence, count: int) -> List:
    """At most ``count`` items evenly spread over ``items``, the first and last included."""
    if len(items) <= count:
        return list(items)
    picks = np.linspace(0, len(items) - 1, count).round().astype(int)
    return [items[i] for i in sorted(set(picks.tolist()))]
