"""Build the tomograms table from folders of maps (the ``prepare-star`` step).

Files are paired BY NAME, never by listing order: the even, odd and full maps of one
tomogram have the same file name, or names that differ only by an even/odd tag in the stem
(``tomo_001_EVN.mrc`` / ``tomo_001_ODD.mrc``, ``even``/``odd``, ``half1``/``half2``; see
:func:`input_names.strip_half_tag`). The tomogram's ``rlnTomoName`` is that shared stem without the
tag. Masks (``mask_folder``) and coordinate files (``coordinate_folder``) are matched by stem
the same way. Rows are in natural order of the names (``tomo_2`` before ``tomo_10``); a list
of defocus values is taken in that order.

Everything is checked before anything is written: folders, pairing, every MRC header
(:func:`mrcio.read_header`), shapes and pixel sizes of the halves. Only then are the averages
written (``create_average``) and the STAR file.

Paths in the STAR file are relative to the current directory when the STAR file is written
there (as the IsoNet2 program does), otherwise absolute, so that they resolve the same way
from any later working directory.
"""
from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import numpy as np

from isonet2core.config import PrepareStarConfig
from isonet2core.io import input_names, mrcio, output_guard, star
from isonet2core.io.output_names import PathLike
from isonet2core.steps import step_inputs
from isonet2core.training import budget

logger = logging.getLogger(__name__)

AVERAGE_FOLDER = "full_average"
COORDINATE_SUFFIXES = (".coords", ".star", ".txt")
PIXEL_SIZE_RTOL = 1e-3


@dataclass(frozen=True)
class TomogramFiles:
    """The maps of one tomogram (``full`` and/or ``even`` + ``odd``) and its identifier."""
    name: str
    full: Optional[Path] = None
    even: Optional[Path] = None
    odd: Optional[Path] = None

    @property
    def maps(self) -> List[Path]:
        """The map files of the tomogram: full, even, odd (those present)."""
        return [p for p in (self.full, self.even, self.odd) if p is not None]


@dataclass(frozen=True)
class PlannedTomogram:
    """A tomogram whose headers were checked: shape ``(z, y, x)``, pixel size and extras."""
    files: TomogramFiles
    shape: tuple
    pixel_size_a: float
    defocus_a: float
    mask: Optional[Path] = None
    box_file: Optional[Path] = None
    n_coordinates: Optional[int] = None


def _natural_key(text: str):
    return [int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", text)]


def list_maps(folder: PathLike, what: str) -> List[Path]:
    """The MRC files (``input_names.MAP_SUFFIXES``) of a folder, natural order; hidden files ignored.

    Parameters
    ----------
    folder : str or Path
        The folder.
    what : str
        Names the folder in errors (``even``, ``full``, ...).

    Returns
    -------
    list of Path
        The files.

    Raises
    ------
    FileNotFoundError
        The folder is missing.
    ValueError
        Naming it when it holds no MRC file.
    """
    p = Path(folder)
    if not p.is_dir():
        raise FileNotFoundError(f"{what} folder not found: {p}")
    files = [f for f in p.iterdir() if f.is_file() and not f.name.startswith(".")
             and f.name.lower().endswith(input_names.MAP_SUFFIXES)]
    if not files:
        raise ValueError(f"{what} folder {p} holds no MRC files "
                         f"({', '.join(input_names.MAP_SUFFIXES)})")
    return sorted(files, key=lambda f: _natural_key(f.name))


def _by_name(files: Sequence[Path], what: str) -> Dict[str, Path]:
    keyed: Dict[str, Path] = {}
    for f in files:
        key = input_names.tomo_name_from_path(f)
        if key in keyed:
            raise ValueError(f"{what} files {keyed[key].name} and {f.name} both name tomogram "
                             f"{key!r}; keep one per tomogram")
        keyed[key] = f
    return keyed


def match_tomograms(full_dir: Optional[PathLike] = None, even_dir: Optional[PathLike] = None,
                    odd_dir: Optional[PathLike] = None) -> List[TomogramFiles]:
    """Pair the maps of the given folders by name (module documentation).

    Parameters
    ----------
    full_dir, even_dir, odd_dir : str or Path, optional
        The folders given.

    Returns
    -------
    list of TomogramFiles
        One per tomogram, natural order.

    Raises
    ------
    ValueError
        Listing the files that have no partner, or even/odd files that look swapped (an
        odd-tagged file in the even folder or the reverse).
    """
    folders = {"full": full_dir, "even": even_dir, "odd": odd_dir}
    keyed = {what: _by_name(list_maps(d, what), what)
             for what, d in folders.items() if d is not None}
    for what, wrong in (("even", "odd"), ("odd", "even")):
        for f in keyed.get(what, {}).values():
            if input_names.half_tag(f.stem) == wrong:
                raise ValueError(f"{f} is tagged {wrong!r} but lies in the {what} folder; "
                                 "are --even and --odd swapped?")
    names = set().union(*(set(k) for k in keyed.values()))
    unmatched = []
    for what, files in keyed.items():
        for other in keyed:
            if other == what:
                continue
            missing = sorted((files[n].name for n in set(files) - set(keyed[other])),
                             key=_natural_key)
            if missing:
                unmatched.append(f"{what} without {other}: {', '.join(missing)}")
    if unmatched:
        raise ValueError("maps do not pair up by name ("
                         + "; ".join(dict.fromkeys(unmatched))
                         + "); names must be identical or differ only by an even/odd tag")
    return [TomogramFiles(name=n, full=keyed.get("full", {}).get(n),
                          even=keyed.get("even", {}).get(n), odd=keyed.get("odd", {}).get(n))
            for n in sorted(names, key=_natural_key)]


def _candidates(tomo: TomogramFiles) -> set:
    names = {tomo.name}
    for p in tomo.maps:
        stem = p.name[: -len(p.suffix)] if p.suffix else p.name
        names.add(stem)
    return names


def match_extra_files(folder: PathLike, tomograms: Sequence[TomogramFiles],
                      suffixes: Sequence[str], what: str,
                      name_suffixes: Sequence[str] = ("",)) -> Dict[str, Path]:
    """Files of a folder matched to tomograms by stem: ``STEM + X + suffix`` (``X`` in
    ``name_suffixes``) belongs to the tomogram whose name or map stem is ``STEM``.

    Parameters
    ----------
    folder : str or Path
        The folder.
    tomograms : sequence of TomogramFiles
        The tomograms.
    suffixes : sequence of str
        File endings accepted.
    what : str
        Names the files in errors (``mask``, ``coordinates``).
    name_suffixes : sequence of str
        Infixes between stem and suffix.

    Returns
    -------
    dict
        Tomogram name -> file.

    Raises
    ------
    FileNotFoundError
        A missing folder.
    ValueError
        Naming it when it holds no such file at all.
    """
    p = Path(folder)
    if not p.is_dir():
        raise FileNotFoundError(f"{what} folder not found: {p}")
    files = sorted((f for f in p.iterdir() if f.is_file() and not f.name.startswith(".")
                    and f.name.lower().endswith(tuple(suffixes))), key=lambda f: _natural_key(f.name))
    if not files:
        raise ValueError(f"{what} folder {p} holds no {what} files ({', '.join(suffixes)})")
    found: Dict[str, Path] = {}
    used = set()
    for tomo in tomograms:
        cands = _candidates(tomo)
        for f in files:
            stem = f.name[: -len(f.suffix)]
            if any(stem == c + x for c in cands for x in name_suffixes):
                if tomo.name in found:
                    raise ValueError(f"{what} files {found[tomo.name].name} and {f.name} both "
                                     f"match tomogram {tomo.name!r}")
                found[tomo.name] = f
                used.add(f)
    for f in files:
        if f not in used:
            logger.warning("%s file %s matches no tomogram; ignored", what, f)
    for tomo in tomograms:
        if tomo.name not in found:
            logger.warning("no %s file for tomogram %s in %s", what, tomo.name, p)
    return found


def count_coordinates(path: PathLike) -> int:
    """Number of coordinates in a coordinate file.

    ``.star``: rows of the first block with ``rlnCoordinateX`` (else of the first table);
    ``.coords`` / ``.txt``: lines with at least three numbers ``x y z`` (blank lines and ``#``
    comments skipped).

    Parameters
    ----------
    path : str or Path
        The file.

    Returns
    -------
    int
        At least 1.

    Raises
    ------
    ValueError
        Naming the file for unreadable lines or no coordinate at all.
    """
    p = Path(path)
    if p.suffix.lower() == ".star":
        import starfile
        try:
            blocks = starfile.read(p, always_dict=True)
        except Exception as exc:
            raise ValueError(f"{p} is not a readable STAR file: {exc}") from None
        tables = [b for b in blocks.values() if hasattr(b, "columns")]
        with_xyz = [b for b in tables if "rlnCoordinateX" in b.columns]
        n = len((with_xyz or tables)[0]) if tables else 0
    else:
        n = 0
        with open(p, encoding="utf-8", errors="replace") as fh:
            for lineno, line in enumerate(fh, start=1):
                text = line.split("#", 1)[0].strip()
                if not text:
                    continue
                parts = text.replace(",", " ").split()
                try:
                    if len(parts) < 3:
                        raise ValueError
                    [float(v) for v in parts[:3]]
                except ValueError:
                    raise ValueError(f"{p}, line {lineno}: expected 'x y z', got {text!r}") from None
                n += 1
    if n == 0:
        raise ValueError(f"{p} holds no coordinates")
    return n


def _check_pair(a: mrcio.MRCInfo, b: mrcio.MRCInfo, check_pixel: bool) -> None:
    if a.shape != b.shape:
        raise ValueError(f"shape mismatch: {a.path} is {a.shape} (z, y, x) but {b.path} is {b.shape}")
    if check_pixel and abs(a.voxel_size_a - b.voxel_size_a) > PIXEL_SIZE_RTOL * max(a.voxel_size_a, b.voxel_size_a):
        raise ValueError(f"pixel size mismatch: {a.path} has {a.voxel_size_a} A but "
                         f"{b.path} has {b.voxel_size_a} A")


def plan(cfg: PrepareStarConfig) -> List[PlannedTomogram]:
    """Pair files, read and check every header, match masks and coordinates (nothing written).

    Parameters
    ----------
    cfg : PrepareStarConfig
        Folders and acquisition settings.

    Returns
    -------
    list of PlannedTomogram
        The checked tomograms.
    """
    cfg.validate()
    tomograms = match_tomograms(cfg.full_dir, cfg.even_dir, cfg.odd_dir)
    n = len(tomograms)
    if len(cfg.defocus_a) not in (1, n):
        raise ValueError(f"defocus: {len(cfg.defocus_a)} values given for {n} tomograms; "
                         "give one value or one per tomogram")
    defocus = list(cfg.defocus_a) * n if len(cfg.defocus_a) == 1 else list(cfg.defocus_a)
    masks = match_extra_files(cfg.mask_dir, tomograms, input_names.MAP_SUFFIXES, "mask",
                              ("", "_mask")) if cfg.mask_dir else {}
    boxes = match_extra_files(cfg.coordinate_dir, tomograms, COORDINATE_SUFFIXES,
                              "coordinate") if cfg.coordinate_dir else {}
    auto = cfg.pixel_size_a is None
    planned = []
    for tomo, defocus_a in zip(tomograms, defocus):
        infos = [mrcio.read_header(p) for p in tomo.maps]
        for other in infos[1:]:
            _check_pair(infos[0], other, check_pixel=auto)
        pixel_size_a: Optional[float] = cfg.pixel_size_a
        if auto:
            pixel_size_a = infos[0].voxel_size_a
            if not pixel_size_a > 0:
                raise ValueError(f"{infos[0].path}: the header has no positive pixel size "
                                 f"({mrcio.header_voxel_size_text(infos[0].path)}); give --pixel_size")
        if tomo.even is not None and tomo.odd is not None:
            step_inputs.check_halves_differ(infos[-2], infos[-1])
        mask = masks.get(tomo.name)
        if mask is not None:
            _check_pair(infos[0], mrcio.read_header(mask), check_pixel=False)
        box = boxes.get(tomo.name)
        planned.append(PlannedTomogram(
            files=tomo, shape=infos[0].shape, pixel_size_a=float(pixel_size_a or 0.0),
            defocus_a=float(defocus_a), mask=mask, box_file=box,
            n_coordinates=count_coordinates(box) if box is not None else None))
    return planned


def write_average(tomo: PlannedTomogram, folder: PathLike) -> Path:
    """Write ``(even + odd) / 2`` of a tomogram (atomic, float32).

    Parameters
    ----------
    tomo : PlannedTomogram
        With even and odd maps.
    folder : str or Path
        Written to ``folder/NAME.mrc``.

    Returns
    -------
    Path
        The file.
    """
    files = tomo.files
    if files.even is None or files.odd is None:
        raise ValueError(f"tomogram {files.name}: an average needs both even and odd maps")
    even, _ = mrcio.read_mrc(files.even)
    mrcio.check_finite_and_nonconstant(even, str(files.even))
    odd, _ = mrcio.read_mrc(files.odd)
    mrcio.check_finite_and_nonconstant(odd, str(files.odd))
    average = (even + odd) * np.float32(0.5)
    return mrcio.write_mrc(Path(folder) / f"{files.name}.mrc", average, tomo.pixel_size_a,
                           protect=files.maps)


def _for_star(path: Optional[Path]) -> Optional[str]:
    return None if path is None else star.path_for_star(path)


def build_table(planned: Sequence[PlannedTomogram], cfg: PrepareStarConfig, star_path: Path,
                averages: Optional[Dict[str, Path]] = None) -> star.TomogramsTable:
    """The tomograms table of checked tomograms.

    Parameters
    ----------
    planned : sequence of PlannedTomogram
        From :func:`plan`.
    cfg : PrepareStarConfig
        Acquisition settings and defaults.
    star_path : Path
        Where the table will be written (relative paths).
    averages : dict, optional
        Name -> written full map (:func:`write_average`).

    Returns
    -------
    star.TomogramsTable
        One row per tomogram.
    """
    averages = averages or {}
    n_auto = cfg.number_subtomos or budget.default_subtomos_per_tomogram(len(planned))
    records = []
    for i, t in enumerate(planned):
        records.append({
            star.INDEX: i + 1,
            star.TOMO_NAME: t.files.name,
            star.TOMO_FULL: _for_star(t.files.full or averages.get(t.files.name)),
            star.TOMO_HALF1: _for_star(t.files.even),
            star.TOMO_HALF2: _for_star(t.files.odd),
            star.PIXEL_SIZE: t.pixel_size_a,
            star.TS_PIXEL_SIZE: t.pixel_size_a,
            star.VOLTAGE: cfg.voltage_kv,
            star.CS: cfg.cs_mm,
            star.AC: cfg.amplitude_contrast,
            star.HAND: star.DEFAULT_HAND,
            star.DEFOCUS: t.defocus_a,
            star.TILT_MIN: cfg.tilt_min_deg,
            star.TILT_MAX: cfg.tilt_max_deg,
            star.TILT_STEP: cfg.tilt_step_deg,
            star.MASK: _for_star(t.mask),
            star.BOX_FILE: _for_star(t.box_file),
            star.N_SUBTOMO: t.n_coordinates if t.n_coordinates is not None else n_auto,
        })
    return star.TomogramsTable.from_records(records, source=star_path)


def _check_outputs(planned: Sequence[PlannedTomogram], cfg: PrepareStarConfig, star_path: Path) -> None:
    """Before any write (:mod:`isonet2core.io.output_guard`): the STAR is no file it lists and no other
    kind of file; the averages are no input; the folders accept files and have room."""
    output_guard.check_star_target(star_path)
    inputs = [p for t in planned for p in (*t.files.maps, t.mask, t.box_file) if p is not None]
    output_guard.check_not_inputs([star_path], inputs)
    averages = [] if not cfg.create_average or cfg.full_dir is not None else planned
    output_guard.check_outputs([star_path.parent / AVERAGE_FOLDER / f"{t.files.name}.mrc" for t in averages],
                          inputs, sizes=[output_guard.mrc_bytes(t.shape) for t in averages],
                          star_path=star_path)


def prepare_star(cfg: PrepareStarConfig) -> star.TomogramsTable:
    """List the tomograms of ``cfg`` in a new tomograms STAR (``prepare-star``).

    Parameters
    ----------
    cfg : PrepareStarConfig
        Folders (full, or even and odd; masks; coordinates) and acquisition values.

    Returns
    -------
    star.TomogramsTable
        The table written; its ``source`` is the STAR path ``cfg.star_name``.

    Raises
    ------
    ValueError, FileNotFoundError, PermissionError, OSError
        Naming the folder, file or value, before anything is written (the even/odd averages
        of ``create_average`` are written after every check): among them even and odd halves
        that are one file or hold identical data, a ``star_name`` that is a file the STAR lists
        or an existing file that is not a STAR file, a read-only STAR or folder, averages that
        do not fit in the free space (:mod:`isonet2core.io.output_guard`).
    """
    planned = plan(cfg)
    star_path = Path(cfg.star_name)
    _check_outputs(planned, cfg, star_path)
    averages: Dict[str, Path] = {}
    if cfg.create_average:
        if cfg.full_dir is not None:
            logger.info("create_average ignored: full maps were given (--full)")
        else:
            folder = star_path.parent / AVERAGE_FOLDER
            for t in planned:
                averages[t.files.name] = write_average(t, folder)
                logger.info("wrote average %s", averages[t.files.name])
    table = build_table(planned, cfg, star_path, averages)
    table.write(star_path, cfg.star_layout)
    logger.info("wrote %s (%d tomograms)", star_path, len(table))
    return table
