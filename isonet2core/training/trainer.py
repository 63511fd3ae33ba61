"""The training loop of ``refine`` and ``denoise``: optimiser, schedule, checkpoints, resume.

``train(cfg, tomograms, run)`` trains the network(s) of ``cfg.method`` on the cubes of
``tomograms`` and writes into ``run.output_dir`` (names: :mod:`isonet2core.io.output_names`):

* ``network_{method}_{arch}_{cube}_full.pt`` after every epoch (atomically replaced) and the
  copies ``network_{method}_{arch}_{cube}_epoch{NNN}.pt`` every ``save_interval`` epochs and
  after the last one (each epoch its own file). Each holds the weights (``model_state``, and
  ``model2_state`` for split halves: the even-trained network first, the odd-trained second,
  as :mod:`isonet2core.steps.predict` applies them), optimiser, schedule and scaler states, the epoch,
  the RNG scheme, the whole configuration (``config.to_dict(TrainConfig)``), normalisation,
  tilt range and microscope per tomogram, the loss history, the version and the command line;
* ``config.json`` (the same configuration and tomograms), ``loss_history.json`` and ``loss.png``;
* with ``with_preview``: ``preview/<tomogram>_epoch{NNN}.mrc``, the first tomogram predicted
  with the current network every ``save_interval`` epochs and after the last (training is never
  shortened by it).

Optimisation: AdamW (fused), learning rate on a cosine from ``learning_rate`` (epoch 1) to
``learning_rate_min`` (last epoch), set at the start of each epoch (a pure function of the
epoch, so resuming needs no scheduler object); gradients accumulated over ``acc_batches``
batches. Mixed precision by :func:`isonet2core.device.autocast_dtype` (CUDA: bfloat16 autocast
where supported, else float16 with a GradScaler; a CPU with native bfloat16: bfloat16 from cube
48 up, else float32); on the CPU a bfloat16 step whose gradients are not finite is dropped and
the run goes on in float32. Fourier arithmetic (targets, CTF, loss) is float32.
``compile_model``: the networks are called through ``torch.compile``.

Batch size ``None`` (auto): CPU 4 cubes when ``cube_size <= 48``, else 2; CUDA per GPU
``clamp(floor(0.5 * memory / estimate), 1, 16)`` where ``estimate`` is the activation memory
of one cube for the architecture (:func:`activation_bytes_per_cube`, about 14 stored float32
feature maps per level, a deliberately generous rule), times the number of GPUs.

Fill reuse (refine): the no-grad network predictions that fill the missing wedge
(:func:`targets.fill_predictions`) cost a forward pass, about a third of a training step's
network time. With ``fill_reuse = k`` one batch of cubes is trained in ``k`` consecutive steps,
each with its own rotations and fill noise, and predicted once (with the network of the first
of those steps, at most ``k - 1`` optimiser steps old); the number of steps per epoch is
unchanged, so an epoch cuts ``1/k`` as many distinct cubes. ``k = 1`` predicts every step.

Reproducibility: the model is initialised from ``torch.manual_seed(seed)``; epoch ``e`` cuts its
cubes with ``default_rng([seed, e, 0])``, draws rotations from ``default_rng([seed, e, 1])`` and
noise from a torch generator seeded by that stream (per rank). Everything an epoch does is a
function of the seed, the epoch and the weights/optimiser state at its start, so a run resumed
from any checkpoint continues exactly as the uninterrupted run would (bit-identical on the CPU).

Several GPUs: one process per GPU with DistributedDataParallel (:mod:`.distributed`).
"""
from __future__ import annotations

import contextlib
import functools
import logging
import math
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, ContextManager, Dict, List, Optional, Sequence

import numpy as np
import torch

from isonet2core.config import Microscope, PredictConfig, TrainConfig, flips_input, method_traits
from isonet2core.device import cpu_threads, describe, precision_name, select_devices
from isonet2core.imaging.fourier import apply_fourier_filter
from isonet2core.io import output_guard, output_names
from isonet2core.io.model_file import ModelFile
from isonet2core.nets.registry import channels_of
from isonet2core.steps import map_streaming
from isonet2core.training import distributed, sampler, targets
from isonet2core.training.loss import LossTerms, masked_loss, plain_loss
from isonet2core.training.spec import RunSettings, TomogramSpec
from isonet2core.training.state import TrainingState

log = logging.getLogger(__name__)



@dataclass
class TrainResult:
    """What :func:`train` wrote: the ``_full`` model, the epoch copies, the loss history."""
    model_path: Path
    epoch_paths: List[Path] = field(default_factory=list)
    history: List[dict] = field(default_factory=list)


# ---------------------------------------------------------------------------------------------
# pure rules
# ---------------------------------------------------------------------------------------------
def cosine_lr(epoch: int, epochs: int, lr_max: float, lr_min: float) -> float:
    """Learning rate of one epoch on the cosine schedule.

    Parameters
    ----------
    epoch : int
        1-based epoch.
    epochs : int
        Epochs of the run.
    lr_max, lr_min : float
        Rates of the first and the last epoch.

    Returns
    -------
    float
        ``lr_min + (lr_max - lr_min) (1 + cos(pi (epoch - 1) / (epochs - 1))) / 2`` (``lr_max`` for
        a one-epoch run).
    """
    if epochs <= 1:
        return lr_max
    t = (epoch - 1) / (epochs - 1)
    return lr_min + 0.5 * (lr_max - lr_min) * (1.0 + math.cos(math.pi * t))


def activation_bytes_per_cube(arch: str, cube_size: int) -> float:
    """Rough training memory of one cube: 14 float32 feature maps per U-Net level.

    Parameters
    ----------
    arch : str
        Network architecture (its channel ladder).
    cube_size : int
        Cube edge (voxels).

    Returns
    -------
    float
        Bytes.
    """
    channels = channels_of(arch)
    return float(sum(c * (cube_size / 2 ** i) ** 3 for i, c in enumerate(channels))) * 14 * 4


def auto_batch_size(devices: Sequence[torch.device], arch: str, cube_size: int) -> int:
    """The batch size of ``batch_size=None`` (module docstring).

    Parameters
    ----------
    devices : sequence of torch.device
        The training devices (CPU or GPUs).
    arch : str
        Network architecture.
    cube_size : int
        Cube edge (voxels).

    Returns
    -------
    int
        Cubes per step over all devices.
    """
    if devices[0].type != "cuda":
        return 4 if cube_size <= 48 else 2
    memory = min(torch.cuda.get_device_properties(d).total_memory for d in devices)
    per_gpu = int(max(1, min(16, math.floor(0.5 * memory / activation_bytes_per_cube(arch, cube_size)))))
    return per_gpu * len(devices)


# ---------------------------------------------------------------------------------------------
# the run
# ---------------------------------------------------------------------------------------------
def train(cfg: TrainConfig, tomograms: Sequence[TomogramSpec], run: RunSettings) -> TrainResult:
    """Train the network(s) of ``cfg.method`` on the cubes of ``tomograms`` (module docstring).

    Parameters
    ----------
    cfg : TrainConfig
        The settings, validated here.
    tomograms : sequence of TomogramSpec
        Maps (two halves, or one map for ``isonet2``), microscope, cubes per epoch, mask.
    run : RunSettings
        Output folder, devices, threads, resume / fine-tuning checkpoint.

    Returns
    -------
    TrainResult
        The ``_full`` model file, the epoch copies and the loss history.

    Raises
    ------
    ValueError
        Unusable settings or tomograms, before any training.
    """
    cfg.validate()
    if not tomograms:
        raise ValueError("no tomograms to train on")
    n_maps = 2 if method_traits(cfg.method).halves else 1
    for t in tomograms:
        if len(t.map_paths) != n_maps:
            raise ValueError(f"tomogram {t.name}: method {cfg.method} needs {n_maps} map(s), "
                             f"got {len(t.map_paths)}")
    _check_start_point(cfg, run)
    devices = select_devices(run.device, run.gpu_ids)
    world = len(devices) if devices[0].type == "cuda" else max(1, int(run.cpu_processes))
    batch_size = cfg.batch_size or auto_batch_size(devices, cfg.arch, cfg.cube_size)
    if batch_size % world:
        raise ValueError(f"batch_size {batch_size} must be a multiple of the number of processes ({world})")
    check_run_outputs(cfg, tomograms, run)
    run.output_dir.mkdir(parents=True, exist_ok=True)
    log.info("devices: %s", describe(devices))
    log.info("training %s (%s, cube %d) on %s, batch %d, %d epoch(s)", cfg.method, cfg.arch,
             cfg.cube_size, ", ".join(map(str, devices if devices[0].type == "cuda" else [f"cpu x{world}"])),
             batch_size, cfg.epochs)
    if world > 1:
        distributed.launch(_worker, world, (cfg, list(tomograms), run, devices, batch_size),
                           backend="nccl" if devices[0].type == "cuda" else "gloo")
        final = output_names.model_path(run.output_dir, cfg.method, cfg.arch, cfg.cube_size)
        return TrainResult(final, _epoch_paths(run.output_dir, cfg), list(ModelFile.load(final).history))
    return _worker(0, 1, cfg, list(tomograms), run, devices, batch_size)


def planned_outputs(cfg: TrainConfig, tomograms: Sequence[TomogramSpec], run: RunSettings) -> List[Path]:
    """Every file a run may write (module docstring): the epoch copies and previews of every
    ``save_interval``-th epoch and the last, counted from epoch 1.

    Parameters
    ----------
    cfg : TrainConfig
        Method, architecture, cube size, epochs, previews.
    tomograms : sequence of TomogramSpec
        The tomograms (previews: ``prev_tomo_idx``, else the first).
    run : RunSettings
        The output folder.

    Returns
    -------
    list of Path
        The model files, history, configuration, loss plot and previews.
    """
    out = run.output_dir
    model = functools.partial(output_names.model_path, out, cfg.method, cfg.arch, cfg.cube_size)
    saved = [e for e in range(1, cfg.epochs + 1) if e % cfg.save_interval == 0 or e == cfg.epochs]
    files = [model(), *(model(e) for e in saved),
             out / output_names.HISTORY_FILE, out / output_names.CONFIG_FILE, out / output_names.LOSS_PNG]
    if cfg.with_preview:
        wanted = set(cfg.prev_tomo_idx or ())
        shown = [t for t in tomograms if t.index in wanted] or list(tomograms[:1])
        files += [output_names.preview_path(out, t.name, e) for t in shown for e in saved]
    return files


def check_run_outputs(cfg: TrainConfig, tomograms: Sequence[TomogramSpec], run: RunSettings) -> None:
    """Before any training (:mod:`isonet2core.io.output_guard`): no file the run writes
    (:func:`planned_outputs`) is one of its maps, masks or box files, the pretrained model or
    ``run.protect``; the folders accept files; existing outputs are not read-only. The
    ``resume`` checkpoint is the run being continued: its ``_full`` file is rewritten.

    Parameters
    ----------
    cfg : TrainConfig
        The settings.
    tomograms : sequence of TomogramSpec
        The tomograms.
    run : RunSettings
        Output folder, pretrained model, ``protect``.

    Raises
    ------
    ValueError, PermissionError, FileExistsError
        Naming the file or folder.
    """
    inputs = [p for t in tomograms for p in (*t.map_paths, t.mask_path, t.box_file) if p is not None]
    output_guard.check_outputs(planned_outputs(cfg, tomograms, run),
                          [*inputs, *run.protect, *([run.pretrained_model] if run.pretrained_model else [])])


def _check_start_point(cfg: TrainConfig, run: RunSettings) -> None:
    """Before any data is read: the resume / pretrained checkpoint must fit ``cfg``."""
    if run.resume is not None and run.pretrained_model is not None:
        raise ValueError("give either resume or pretrained_model, not both")
    path = run.resume or run.pretrained_model
    if path is None:
        return
    start = ModelFile.load(path)
    start.check_compatible(cfg.arch, cfg.cube_size, name=str(path))
    if run.resume is not None:
        if start.method != cfg.method:
            raise ValueError(f"{path} was trained with method {start.method}, not {cfg.method}")
        if not start.resumable:
            raise ValueError(f"{path} holds no optimiser state or epoch; it cannot be resumed "
                             "(use it as --pretrained_model instead)")
        if cfg.split_halves != start.split_halves:
            raise ValueError(f"{path}: split_halves={cfg.split_halves} does not match the checkpoint")


def fill_reuse(cfg: TrainConfig) -> int:
    """Consecutive steps that train one batch of cubes (under fresh rotations and fill noise) and
    share its no-grad fill predictions.

    Parameters
    ----------
    cfg : TrainConfig
        Method and ``fill_reuse``.

    Returns
    -------
    int
        ``cfg.fill_reuse`` for refine, 1 for denoise (no wedge filling).
    """
    return int(cfg.fill_reuse) if method_traits(cfg.method).fills_wedge else 1


@dataclass
class Cubes:
    """One batch of cubes on the device: ``cubes`` ``(h, b, 1, n, n, n)`` (for refine already
    phase flipped, :func:`targets.flip_cubes`), their tomograms' ``filters`` and, for refine, the
    fill predictions ``fill`` (same shape; None for denoise)."""
    cubes: torch.Tensor
    filters: List[targets.CubeFilters]
    fill: Optional[torch.Tensor]


def _epoch_paths(output_dir: Path, cfg: TrainConfig) -> List[Path]:
    return [output_names.model_path(output_dir, cfg.method, cfg.arch, cfg.cube_size, e)
            for e in range(1, cfg.epochs + 1)
            if output_names.model_path(output_dir, cfg.method, cfg.arch, cfg.cube_size, e).exists()]


Timer = Callable[[str], ContextManager]
"""A timing hook: ``timer(section)`` is a context manager around ``"fill_forward"`` (the no-grad
wedge-filling predictions) and ``"forward"`` (the training forward pass)."""


def _no_timer(section: str) -> ContextManager:
    return contextlib.nullcontext()


class Session:
    """One process's training (rank ``rank`` of ``world``): its cubes' sources and filters, its
    :class:`~isonet2core.training.state.TrainingState`, and the step and epoch interface that
    :func:`train`, the benchmarks (``bench/train_speed.py``) and the kill-point tests use:

    ``prepare(cubes, refs)`` -> :class:`Cubes` (fill predictions once per ``fill_reuse`` steps),
    ``batch(prepared, rotations, generator)`` -> inputs and targets, ``loss(batch)`` (network
    forward + loss), ``state.optimizer_step(...)``; ``run_epoch(epoch)`` runs them all.
    ``timer``: a timing hook (:data:`Timer`)."""

    def __init__(self, rank: int, world: int, cfg: TrainConfig, tomograms: List[TomogramSpec],
                 run: RunSettings, devices: List[torch.device], batch_size: int,
                 timer: Timer = _no_timer):
        self.rank, self.world, self.cfg, self.run = rank, world, cfg, run
        self.tomograms = tomograms
        self.timer = timer
        self.device = devices[rank] if devices[0].type == "cuda" else devices[0]
        if self.device.type == "cuda":
            torch.cuda.set_device(self.device)
        self.batch_size = batch_size
        self.sources = [sampler.open_source(t.name, t.map_paths, t.microscope, t.n_subtomos,
                                            cfg.cube_size, t.mask_path, t.box_file)
                        for t in tomograms]
        cache: Dict[Microscope, targets.CubeFilters] = {}
        for t in tomograms:
            if t.microscope not in cache:
                cache[t.microscope] = targets.cube_filters(cfg.cube_size, t.microscope, cfg, self.device)
        self.filters = [cache[t.microscope] for t in tomograms]
        self.state = TrainingState(cfg, run, self.device, world)

    # ---- one step ---------------------------------------------------------------------------
    def autocast(self):
        """The autocast context of the network's arithmetic.

        Returns
        -------
        contextlib.AbstractContextManager
            ``torch.autocast`` in the state's dtype, a null context in float32.
        """
        if self.state.amp is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.state.amp)

    def predict_fill(self, half: int, x: torch.Tensor) -> torch.Tensor:
        """The wedge-filling prediction of cubes, without gradient.

        Eval mode, except for networks with batch normalisation, which normalise by the batch itself
        (their running averages lag behind the weights while they train).

        Parameters
        ----------
        half : int
            0 or 1: the network of split-halves training (ignored otherwise).
        x : torch.Tensor
            ``(b, 1, n, n, n)``.

        Returns
        -------
        torch.Tensor
            float32 ``(b, 1, n, n, n)``.
        """
        st = self.state
        index = half if self.cfg.split_halves else 0
        model = st.models[index]
        model.train(st.batch_norm)
        with self.timer("fill_forward"), torch.no_grad(), self.autocast():
            out = st.fill_models[index](x.contiguous(memory_format=st.memory_format)).float()
        model.train()
        return out

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        """The training forward pass (split halves: the first half of the batch through the first
        network).

        Parameters
        ----------
        inputs : torch.Tensor
            ``(b, 1, n, n, n)``.

        Returns
        -------
        torch.Tensor
            float32 ``(b, 1, n, n, n)``.
        """
        st = self.state
        inputs = inputs.contiguous(memory_format=st.memory_format)
        with self.timer("forward"), self.autocast():
            if len(st.train_models) == 1:
                return st.train_models[0](inputs).float()
            b = inputs.shape[0] // 2
            return torch.cat([st.train_models[0](inputs[:b]), st.train_models[1](inputs[b:])]).float()

    def loss(self, batch: targets.Batch) -> LossTerms:
        """Forward pass and loss terms of one batch.

        Parameters
        ----------
        batch : targets.Batch
            Inputs, targets, masks, output CTF.

        Returns
        -------
        LossTerms
            Total, Noise2Noise and missing-wedge terms (scalars, with gradient).
        """
        pred = self.forward(batch.inputs)
        if batch.output_ctf is not None:
            pred = apply_fourier_filter(pred, batch.output_ctf)
        loss_func = str(self.cfg.loss_func)      # resolved by TrainConfig (never None)
        if batch.input_mask is None or batch.target_mask is None:
            value = plain_loss(pred, batch.targets, loss_func)
            return LossTerms(value, value, torch.zeros_like(value))
        return masked_loss(pred, batch.targets, batch.input_mask, batch.target_mask,
                           mw_weight=self.cfg.mw_weight, loss_func=loss_func, mw_loss_func=self.cfg.mw_loss_func)

    def prepare(self, cubes_np: np.ndarray, refs: Sequence[sampler.CubeRef]) -> Cubes:
        """One batch of cubes on the device with its filters and, for refine, the no-grad fill
        predictions (computed once, reused for ``fill_reuse`` steps).

        Parameters
        ----------
        cubes_np : numpy.ndarray
            float32 ``(h, b, n, n, n)`` (:func:`sampler.load_batch`).
        refs : sequence of sampler.CubeRef
            Their references (which tomogram each cube is from).

        Returns
        -------
        Cubes
            Flipped cubes ``(h, b, 1, n, n, n)``, filters and fill predictions.
        """
        cubes = torch.from_numpy(cubes_np).to(self.device).unsqueeze(2)      # (h, b, 1, n, n, n)
        filters = [self.filters[r.source] for r in refs]
        if not method_traits(self.cfg.method).fills_wedge:
            return Cubes(cubes, filters, None)
        cubes = targets.flip_cubes(cubes, filters)   # once for the fill_reuse steps of these cubes
        fill = targets.fill_predictions(targets.wedge_cubes(cubes, filters), self.predict_fill,
                                        shared_network=not self.cfg.split_halves)
        return Cubes(cubes, filters, fill)

    def batch(self, prepared: Cubes, rotations, generator: torch.Generator) -> targets.Batch:
        """Inputs and targets of one step from prepared cubes (fresh rotations and noise).

        Parameters
        ----------
        prepared : Cubes
            :meth:`prepare`'s result.
        rotations : sequence of Rotation
            One per cube.
        generator : torch.Generator
            Draws the noise.

        Returns
        -------
        targets.Batch
            The step's inputs and targets.
        """
        if not method_traits(self.cfg.method).fills_wedge:
            return targets.denoise_batch(prepared.cubes, prepared.filters, rotations)
        if prepared.fill is None:
            raise RuntimeError("refine cubes were prepared without their fill predictions")
        return targets.refine_batch(prepared.cubes, prepared.filters, prepared.fill, rotations,
                                    self.cfg, generator)

    # ---- one epoch --------------------------------------------------------------------------
    def run_epoch(self, epoch: int) -> dict:
        """Train one epoch.

        Parameters
        ----------
        epoch : int
            1-based epoch (sets the learning rate and the epoch's random streams).

        Returns
        -------
        dict
            Its history entry: ``epoch``, mean ``loss``, ``n2n_loss``, ``mw_loss`` (over the
            applied steps), ``learning_rate``, ``steps``, ``dropped_steps`` (bfloat16 steps whose
            gradients were dropped, :meth:`.state.TrainingState.optimizer_step`), ``precision`` (the
            network's at the epoch's end), ``seconds`` (the epoch's wall time) and
            ``step_seconds`` (each optimiser step's, from the end of the one before).
        """
        cfg, st = self.cfg, self.state
        t0 = time.time()
        lr = cosine_lr(epoch, cfg.epochs, cfg.learning_rate, cfg.learning_rate_min)
        for group in st.optimizer.param_groups:
            group["lr"] = lr
        plan = sampler.epoch_plan(self.sources, cfg.cube_size, cfg.seed, epoch)
        steps = sampler.batches(plan, self.batch_size)
        reuse = fill_reuse(cfg)
        cube_batches = steps[: -(-len(steps) // reuse)]   # step i trains cube batch i // reuse
        aug_rng = sampler.epoch_rng(cfg.seed, epoch, 1)
        generator = torch.Generator(device=self.device)
        generator.manual_seed(int(sampler.epoch_rng(cfg.seed, epoch, 2 + self.rank).integers(2 ** 62)))
        rot_per_step = [targets.draw_rotations(cfg.method, len(refs), aug_rng, cfg.random_rot_weight,
                                               cfg.random_rot_angle) for refs in steps]
        mine = [refs[self.rank::self.world] for refs in cube_batches]
        sums = torch.zeros(3, dtype=torch.float64)
        dropped = 0
        bar = _progress(len(steps), f"epoch {epoch}/{cfg.epochs}", self.run.progress and self.rank == 0)
        for m in st.train_models:
            m.train()
        st.optimizer.zero_grad(set_to_none=True)
        step_ends = [time.perf_counter()]
        with ThreadPoolExecutor(max_workers=1) as pool, (bar or contextlib.nullcontext()):  # closes the bar
            pending = pool.submit(sampler.load_batch, self.sources, mine[0], cfg.cube_size)
            prepared = None
            for i in range(len(steps)):
                u = i // reuse
                if i % reuse == 0:
                    cubes = pending.result()
                    if u + 1 < len(mine):
                        pending = pool.submit(sampler.load_batch, self.sources, mine[u + 1], cfg.cube_size)
                    prepared = self.prepare(cubes, mine[u])
                assert prepared is not None      # step 0 of every cycle prepares
                terms = self.loss(self.batch(prepared, rot_per_step[i][self.rank::self.world], generator))
                amp = st.amp
                applied = st.optimizer_step(terms.total, i, last=i + 1 == len(steps))
                values = torch.stack([t.detach().double().cpu() for t in terms])   # one sync per step
                if applied:
                    check_finite(values, epoch, i + 1, amp)
                    sums += values
                else:                       # bfloat16 gradients dropped: the state is float32 now
                    dropped += 1
                step_ends.append(time.perf_counter())
                if bar is not None:
                    bar.update(1)
                    bar.set_postfix(loss=f"{values[0]:.4g}", n2n=f"{values[1]:.4g}", mw=f"{values[2]:.4g}")
        means = distributed.all_reduce_mean(sums / max(1, len(steps) - dropped))
        entry = {"epoch": epoch, "loss": float(means[0]), "n2n_loss": float(means[1]),
                 "mw_loss": float(means[2]), "learning_rate": lr, "steps": len(steps),
                 "dropped_steps": dropped, "precision": precision_name(st.amp),
                 "seconds": round(time.time() - t0, 3),
                 "step_seconds": [round(b - a, 4) for a, b in zip(step_ends, step_ends[1:])]}
        log.info("epoch %d/%d: loss %.5g (n2n %.5g, missing wedge %.5g), lr %.3g, %d steps, %.1f s",
                 epoch, cfg.epochs, entry["loss"], entry["n2n_loss"], entry["mw_loss"], lr,
                 len(steps), entry["seconds"])
        return entry

    def save(self, epoch: int) -> List[Path]:
        """Write the files of an epoch (:meth:`TrainingState.save`).

        Parameters
        ----------
        epoch : int
            The epoch just trained.

        Returns
        -------
        list of Path
            The model files written.
        """
        return self.state.save(epoch, self.batch_size, self.tomograms, self.sources)

    # ---- previews ---------------------------------------------------------------------------
    def preview_tomograms(self) -> List[int]:
        """The tomograms to preview: those whose rlnIndex is in ``prev_tomo_idx`` (the first tomogram
        when none is, or when it is None).

        Returns
        -------
        list of int
            Positions in the session's tomograms.
        """
        wanted = set(self.cfg.prev_tomo_idx or ())
        chosen = [i for i, t in enumerate(self.tomograms) if t.index in wanted]
        return chosen or [0]

    def preview(self, epoch: int) -> List[Path]:
        """Predict the preview tomograms (their first map) with the predicting network (the weight
        average with ``ema_decay``) into ``preview/<tomogram>_epoch{NNN}.mrc``.

        Parameters
        ----------
        epoch : int
            Names the files.

        Returns
        -------
        list of Path
            The maps written.
        """
        phaseflip = flips_input(self.cfg.ctf_mode, self.cfg.do_phaseflip_input, self.cfg.is_ctf_flipped)
        written = []
        model = self.state.predict_models[0]
        for position in self.preview_tomograms():
            t = self.tomograms[position]
            path = output_names.preview_path(self.run.output_dir, t.name, epoch)
            written.append(map_streaming.predict_file(
                [model], t.map_paths[0], path, cube_size=self.cfg.cube_size,
                config=PredictConfig(mixed_precision=self.cfg.mixed_precision, amp_dtype=self.cfg.amp_dtype),
                microscope=t.microscope, phaseflip=phaseflip, device=self.device,
                voxel_size_a=t.microscope.pixel_size_a, protect=list(t.map_paths)))
            model.train(model is self.state.models[0])
        return written


def check_finite(values: torch.Tensor, epoch: int, step: int, amp: Optional[torch.dtype]) -> None:
    """Stop a training whose loss is no longer finite, before any checkpoint of the epoch is
    written (the last checkpoint stays good for ``--resume``; the weights in memory, updated with
    that step's gradients, are dropped).

    Parameters
    ----------
    values : torch.Tensor
        The step's loss terms ``(3,)``: total, n2n, missing wedge.
    epoch, step : int
        1-based epoch and step, for the message.
    amp : torch.dtype or None
        The autocast dtype (None: float32), for the message.

    Raises
    ------
    FloatingPointError
        When a term is NaN or infinite.
    """
    if bool(torch.isfinite(values).all()):
        return
    precision = precision_name(amp)
    hint = ("; try --mixed_precision False" if amp is not None else
            "; try a lower --learning_rate, with --learning_rate_min no higher than it "
            "(e.g. --learning_rate 1e-4 --learning_rate_min 1e-4)")
    raise FloatingPointError(
        f"epoch {epoch}, step {step}: the loss is not finite (total {values[0].item()}, n2n "
        f"{values[1].item()}, missing wedge {values[2].item()}; network in {precision}){hint}. "
        "Checkpoints of earlier epochs are kept (--resume continues from one).")


def _progress(total: int, desc: str, enabled: bool):
    if not enabled:
        return None
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, file=sys.stderr, leave=True, dynamic_ncols=True)


def _worker(rank: int, world: int, cfg: TrainConfig, tomograms: List[TomogramSpec], run: RunSettings,
            devices: List[torch.device], batch_size: int) -> TrainResult:
    if devices[0].type == "cpu":
        torch.set_num_threads(cpu_threads(run.ncpus, world))
    session = Session(rank, world, cfg, tomograms, run, devices, batch_size)
    out = run.output_dir
    full = output_names.model_path(out, cfg.method, cfg.arch, cfg.cube_size)
    epoch_paths: List[Path] = []
    for epoch in range(session.state.start_epoch + 1, cfg.epochs + 1):
        entry = session.run_epoch(epoch)
        session.state.history.append(entry)
        if rank == 0:
            written = session.save(epoch)
            epoch_paths.extend(p for p in written if p != full)
            if cfg.with_preview and (epoch % cfg.save_interval == 0 or epoch == cfg.epochs):
                log.info("preview: %s", ", ".join(map(str, session.preview(epoch))))
        distributed.barrier()
    if rank == 0 and session.state.start_epoch >= cfg.epochs and not full.exists():
        session.save(session.state.start_epoch)
    return TrainResult(full, epoch_paths, list(session.state.history))
