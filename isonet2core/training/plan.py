"""The training plan of ``refine`` and ``denoise``: which method, and one
:class:`~isonet2core.training.trainer.TomogramSpec` per selected STAR row with every file
checked (headers and data, masks, box files, sizes) before training starts."""
from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple, cast

from isonet2core.config import METHODS, Method, TrainConfig, method_traits, refine_method
from isonet2core.io import mrcio, output_guard, star
from isonet2core.io.output_names import PathLike
from isonet2core.steps import step_inputs
from isonet2core.training import budget
from isonet2core.training.sampler import read_box_file
from isonet2core.training.spec import TomogramSpec

log = logging.getLogger(__name__)


def resolve_method(requested: str, table: star.TomogramsTable, rows: List[int]) -> Method:
    """The training method of a request.

    Parameters
    ----------
    requested : str
        ``auto`` or one of ``METHODS``.
    table : star.TomogramsTable
        The tomograms STAR.
    rows : list of int
        The selected rows.

    Returns
    -------
    str
        ``auto``: isonet2-n2n when every selected tomogram has both halves, else isonet2;
        otherwise the request.

    Raises
    ------
    ValueError
        An unknown method.
    """
    if requested != "auto":
        if requested not in METHODS:
            raise ValueError(f"method must be auto or one of {', '.join(METHODS)}, got {requested!r}")
        return cast(Method, requested)
    halves = all(table.value(r, star.TOMO_HALF1) is not None and table.value(r, star.TOMO_HALF2) is not None
                 for r in rows)
    method = cast(Method, refine_method(halves))
    log.info("method auto: %s (%s)", method, "even/odd halves listed" if halves else "no halves in the STAR")
    return method


def _halves_of(table: star.TomogramsTable, row: int, method: str) -> Tuple[Path, Path]:
    missing = [c for c in (star.TOMO_HALF1, star.TOMO_HALF2) if table.value(row, c) is None]
    if missing:
        raise ValueError(f"method {method} needs even/odd halves, but tomogram {table.tomo_name(row)} "
                         f"of {table.source} has no {' / '.join(missing)}")
    return table.required_path(row, star.TOMO_HALF1), table.required_path(row, star.TOMO_HALF2)


def plan_tomograms(table: star.TomogramsTable, rows: List[int], cfg: TrainConfig,
                   input_column: str = "auto") -> List[TomogramSpec]:
    """One TomogramSpec per selected row, every file checked (headers and data) before training.

    Parameters
    ----------
    table : star.TomogramsTable
        The tomograms STAR.
    rows : list of int
        The selected rows.
    cfg : TrainConfig
        Method (halves or one map), cube size.
    input_column : str
        Single-map refine: STAR column of the maps (``auto``: deconvolved, else full).

    Returns
    -------
    list of TomogramSpec
        In row order.

    Raises
    ------
    ValueError, FileNotFoundError
        Naming the tomogram or file.
    """
    if not rows:
        raise ValueError(f"{table.source}: no tomograms selected")
    specs = []
    for row in rows:
        name = table.tomo_name(row)
        if not method_traits(cfg.method).halves:
            map_paths: Tuple[Path, ...] = (table.required_path(row, step_inputs.single_map_column(table, row, input_column)),)
        else:
            map_paths = _halves_of(table, row, cfg.method)
        infos = step_inputs.check_maps(map_paths)
        budget.check_fits(infos[0].shape, cfg.cube_size, f"{name} ({map_paths[0]})")
        mask = table.path(row, star.MASK) if table.value(row, star.MASK) is not None else None
        if mask is not None:
            info = mrcio.read_header(mask)
            if info.shape != infos[0].shape:
                raise ValueError(f"mask {mask} of tomogram {name} has shape {info.shape}, the tomogram "
                                 f"{infos[0].shape}")
        box = table.path(row, star.BOX_FILE) if table.value(row, star.BOX_FILE) is not None else None
        if box is not None:
            if not box.is_file():
                raise FileNotFoundError(f"box file {box} of tomogram {name} (rlnBoxFile) not found")
            n = len(read_box_file(box, infos[0].shape, cfg.cube_size, name))
        else:
            n = (cfg.number_subtomos or table.value(row, star.N_SUBTOMO)
                 or budget.default_subtomos_per_tomogram(len(rows)))
        needs = f"CTF_mode {cfg.ctf_mode}" if cfg.ctf_mode is not None else None
        specs.append(TomogramSpec(name, map_paths, table.microscope(row, needs), int(n), mask,
                                  index=table.index(row), box_file=box))
    names = [s.name for s in specs]
    if len(set(names)) != len(names):
        raise ValueError(f"{table.source}: tomogram names (rlnTomoName) must be distinct, got {names}")
    return specs


@dataclass(frozen=True)
class TrainingPlan:
    """What to train: the validated settings (method resolved), the tomograms, and ``inputs``:
    every file the STAR names (any row, any column) and the STAR, which the run's outputs must
    not replace (:attr:`~isonet2core.training.trainer.RunSettings.protect`)."""
    cfg: TrainConfig
    tomograms: List[TomogramSpec]
    inputs: Tuple[Path, ...] = ()


def plan_training(star_file: PathLike, method: str, settings: Dict[str, Any], *,
                  tomo_idx: Optional[Sequence[int]] = None, input_column: str = "auto") -> TrainingPlan:
    """What ``refine`` or ``denoise`` will train, every file checked.

    Parameters
    ----------
    star_file : path
        The tomograms STAR.
    method : str
        ``auto`` (isonet2-n2n when every selected tomogram has halves, else isonet2),
        ``isonet2-n2n``, ``isonet2`` or ``n2n`` (denoise).
    settings : dict
        The :class:`~isonet2core.config.TrainConfig` fields but ``method``.
    tomo_idx : sequence of int, optional
        rlnIndex values of the tomograms; None: all.
    input_column : str
        Single-map refine: STAR column of the maps (``auto``: deconvolved, else full).

    Returns
    -------
    TrainingPlan
        The validated settings and one TomogramSpec per tomogram.

    Raises
    ------
    ValueError, FileNotFoundError
        Naming the value or file.
    """
    table = star.TomogramsTable.read(star_file)
    rows = table.rows_for(tomo_idx)
    resolved = resolve_method(method, table, rows)
    cfg = TrainConfig(method=resolved, **settings).validate()
    inputs = (*output_guard.table_inputs(table), Path(star_file))
    return TrainingPlan(cfg, plan_tomograms(table, rows, cfg, input_column), inputs)
