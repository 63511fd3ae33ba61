"""Training throughput: subtomograms per second, peak memory, and where a step's time goes.

One configuration (arch, cube, batch, device, precision) is measured in a fresh worker
process (:func:`measure_config`, run through :func:`bench.worker.run_worker`):

1. A training session is built with the trainer's own class
   (``isonet2core.training.trainer.Session``: model, AdamW, filters, sources) on two random
   even/odd maps of ``(cube + 32)^3`` voxels, method ``isonet2-n2n`` (refine, the default).
2. Training steps run the trainer's own functions in the order of ``Session.run_epoch``:
   every ``fill_reuse``-th step (the trainer's default, :func:`trainer.fill_reuse`) starts a new
   batch of cubes: ``sampler.load_batch`` -> ``Session.prepare`` (``targets.fill_predictions``:
   the no-grad network predictions of both halves for the wedge filling); every step then runs
   ``Session.batch`` (``targets.refine_batch``: fill noise, wedge filling, rotations,
   re-wedging) -> ``Session.loss`` (network forward + masked Fourier loss) -> backward ->
   optimiser step. The session's timing hook times ``predict_fill`` and ``forward``,
   so the step splits into: ``fill_forward`` (no-grad predictions for the wedge filling),
   ``targets`` (the rest of target generation: FFTs, noise, rotations of cubes and masks,
   re-wedging), ``forward`` + ``backward`` (the network with gradients), ``loss`` (masked
   Fourier loss), ``optimizer`` (AdamW step, zero_grad), ``rest`` (cube loading - prefetched on
   a thread by the trainer -, loss bookkeeping, and whatever the sections do not cover).
   Timed steps come in whole cycles of ``fill_reuse`` steps and every figure is the mean over
   them (a step that predicts and one that reuses differ by the fill forward).
3. The bare network: forward + backward of the same model on a random batch of the same
   shape (``2 * batch`` cubes: the even and odd inputs), under the same autocast, loss
   ``mean(out^2)``, no optimiser. ``overhead = step / bare``.

Timed cycles follow one warm-up cycle; their number is cut so that the configuration stays
within ``cap_s`` (projected from the warm-up). Peak memory is that of the training
steps (model, optimiser state, activations, targets), see :class:`bench.common.PeakMemory`.
"""
from __future__ import annotations

import logging
import time
from dataclasses import replace
from pathlib import Path
from typing import Optional

import numpy as np
import torch

from bench.common import PeakMemory, SectionTimer, mean, median, mib

log = logging.getLogger(__name__)

STEP_SECTIONS = ("fill_forward", "targets", "forward", "backward", "loss", "optimizer", "rest")
"""The split of one training step reported (seconds, medians over the timed steps)."""


def _write_maps(workdir: Path, cube: int, seed: int = 0):
    from isonet2core.io.mrcio import write_mrc

    n = cube + 32
    rng = np.random.default_rng(seed)
    signal = rng.standard_normal((n, n, n), dtype=np.float32)
    paths = []
    for half in ("even", "odd"):
        vol = signal + rng.standard_normal((n, n, n), dtype=np.float32)
        paths.append(write_mrc(workdir / f"{half}.mrc", vol, 10.0))
    return tuple(paths)


def _split(step: dict) -> dict:
    """Exclusive seconds per section of one step from the (nested) timer sections."""
    fill = step.get("fill_forward", 0.0)
    fwd = step.get("forward", 0.0)
    out = {
        "fill_forward": fill,
        "targets": step.get("targets", 0.0) - fill,
        "forward": fwd,
        "backward": step.get("backward", 0.0),
        "loss": step.get("loss", 0.0) - fwd,
        "optimizer": step.get("optimizer", 0.0),
    }
    out["rest"] = step["total"] - sum(out.values())
    out["total"] = step["total"]
    out["cpu"] = step.get("cpu", float("nan"))
    return out


class TrainHarness:
    """A trainer session on random maps with timed training steps and bare network steps.

    ``train_step(i)`` runs one step of the trainer's functions (see the module docstring) and
    records its sections in ``timer.steps``; ``bare_step()`` one bare forward + backward of
    the same model on a batch of the same shape, recorded in ``bare_timer.steps``.
    """

    def __init__(self, *, arch: str, cube: int, batch: int, device: torch.device,
                 mixed_precision: bool, workdir: Path, method: str = "isonet2-n2n", n_steps: int = 4,
                 fill_reuse: Optional[int] = None, amp_dtype: str = "auto", compile_model: bool = False):
        from isonet2core.config import Microscope, TrainConfig
        from isonet2core.training import sampler, targets, trainer

        if device.type == "cuda" and device.index is None:   # the trainer's sessions take indexed devices
            device = torch.device("cuda", torch.cuda.current_device())
        self.cube, self.batch, self.method, self.device = cube, batch, method, device
        self.sampler = sampler
        maps = _write_maps(workdir, cube)
        self.memory = PeakMemory(device)   # baseline: before the model exists
        cfg = TrainConfig(method=method, arch=arch, cube_size=cube, batch_size=batch,
                          epochs=1, mixed_precision=mixed_precision, amp_dtype=amp_dtype,
                          compile_model=compile_model, seed=0)
        if fill_reuse is not None:
            cfg = replace(cfg, fill_reuse=int(fill_reuse))
        self.cfg = cfg
        self.reuse = trainer.fill_reuse(cfg)
        spec = trainer.TomogramSpec(name="bench", map_paths=maps if method != "isonet2" else maps[:1],
                                    microscope=Microscope(pixel_size_a=10.0), n_subtomos=batch * n_steps)
        run = trainer.RunSettings(output_dir=workdir / "train", device=device.type, progress=False)
        self.timer = SectionTimer(device)
        self.session = session = trainer.Session(0, 1, cfg, [spec], run, [device], batch,
                                                 timer=self.timer.section)
        self.state = state = session.state
        for m in state.train_models:
            m.train()
        for group in state.optimizer.param_groups:
            group["lr"] = cfg.learning_rate

        plan = sampler.epoch_plan(session.sources, cube, cfg.seed, 1)
        self.steps = sampler.batches(plan, batch)
        aug_rng = sampler.epoch_rng(cfg.seed, 1, 1)
        self.generator = torch.Generator(device=device)
        self.generator.manual_seed(0)
        self.rotations = [targets.draw_rotations(method, len(self.steps[0]), aug_rng, cfg.random_rot_weight,
                                                    cfg.random_rot_angle)
                          for _ in range(len(self.steps) * self.reuse)]
        self.prepared = None
        self.model = state.models[0]
        self.called_model = state.train_models[0]   # compiled when compile_model
        n_maps = 1 if method == "isonet2" else 2
        self.network_cubes = n_maps * batch
        self.x_bare = torch.randn(self.network_cubes, 1, cube, cube, cube, device=device)
        self.bare_timer = SectionTimer(device)

    def train_step(self, i: int) -> None:
        session, timer, cfg = self.session, self.timer, self.cfg
        refs = self.steps[(i // self.reuse) % len(self.steps)]
        with timer.step():
            if i % self.reuse == 0 or self.prepared is None:
                with timer.section("load"):
                    cubes = self.sampler.load_batch(session.sources, refs, self.cube)
                with timer.section("targets"):
                    self.prepared = session.prepare(cubes, refs)
            with timer.section("targets"):
                b = session.batch(self.prepared, self.rotations[i % len(self.rotations)], self.generator)
            with timer.section("loss"):
                terms = session.loss(b)
            with timer.section("backward"):
                self.state.scaler.scale(terms.total / cfg.acc_batches).backward()
            with timer.section("optimizer"):
                self.state.scaler.step(self.state.optimizer)
                self.state.scaler.update()
                self.state.optimizer.zero_grad(set_to_none=True)
            torch.stack([t.detach().double().cpu() for t in terms])

    def bare_step(self) -> None:
        with self.bare_timer.step():
            with self.session.autocast():
                out = self.called_model(self.x_bare).float()
            out.square().mean().backward()
        self.model.zero_grad(set_to_none=True)


def measure_config(*, arch: str, cube: int, batch: int, device: str = "cpu",
                   mixed_precision: bool = False, warmup: int = 1, reps: int = 2,
                   cap_s: float = 120.0, workdir: str, method: str = "isonet2-n2n",
                   threads: Optional[int] = None, fill_reuse: Optional[int] = None,
                   amp_dtype: str = "auto", compile_model: bool = False, **_) -> dict:
    """Measure one configuration; returns a JSON-ready dict (see the module docstring)."""
    t_start = time.perf_counter()
    if threads:
        torch.set_num_threads(int(threads))
    dev = torch.device(device)
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    h = TrainHarness(arch=arch, cube=cube, batch=batch, device=dev, mixed_precision=mixed_precision,
                     workdir=workdir, method=method, n_steps=warmup + reps, fill_reuse=fill_reuse,
                     amp_dtype=amp_dtype, compile_model=compile_model)
    k = h.reuse   # steps per cycle: one fill prediction, k - 1 reuses
    mem = h.memory
    mem.reset()
    for i in range(warmup * k):
        h.train_step(i)
    peak_warm = mem.peak_bytes()
    for _ in range(warmup):
        h.bare_step()
    per_rep = (sum(s["total"] for s in h.timer.steps[-k:]) + k * h.bare_timer.steps[-1]["total"]) if warmup else 0.0
    elapsed = time.perf_counter() - t_start
    n_timed = reps
    if per_rep > 0:
        n_timed = max(1, min(reps, int((cap_s - elapsed) // per_rep)))
    for i in range(n_timed * k):
        h.train_step(warmup * k + i)
    peak = mem.peak_bytes()
    for _ in range(n_timed * k):
        h.bare_step()

    timed = [_split(s) for s in h.timer.steps[warmup * k:]]
    split = {name: mean([s[name] for s in timed]) for name in STEP_SECTIONS + ("total", "cpu")}
    bare = median([s["total"] for s in h.bare_timer.steps[warmup:]])
    step_s = split["total"]
    from isonet2core.device import precision_name

    amp = h.state.amp
    return {
        "status": "ok",
        "arch": arch, "cube": cube, "batch": batch, "method": method, "device": str(dev),
        "mixed_precision": amp is not None,
        "amp_dtype": None if amp is None else str(amp).replace("torch.", ""),
        "precision": precision_name(amp),
        "compile_model": bool(compile_model),
        "network_cubes_per_step": h.network_cubes, "fill_reuse": k,
        "warmup_steps": warmup * k, "timed_steps": n_timed * k,
        "step_s": round(step_s, 4),
        "step_cpu_s": round(split["cpu"], 4),
        "cpu_utilization": round(split["cpu"] / (step_s * torch.get_num_threads()), 3),
        "subtomos_per_s": round(batch / step_s, 4),
        "split_s": {name: round(v, 4) for name, v in split.items() if name != "cpu"},
        "split_fraction": {name: round(split[name] / step_s, 4) for name in STEP_SECTIONS},
        "bare_forward_backward_s": round(bare, 4),
        "overhead_ratio": round(step_s / bare, 3) if bare > 0 else None,
        "overhead_ratio_without_fill": round((step_s - split["fill_forward"]) / bare, 3) if bare > 0 else None,
        "peak_memory_mib": mib(peak),
        "peak_memory_warmup_mib": mib(peak_warm),
        "peak_memory_method": mem.method,
        "parameters": sum(p.numel() for p in h.model.parameters()),
        "all_steps_s": [round(s["total"], 4) for s in timed],
        "all_bare_s": [round(s["total"], 4) for s in h.bare_timer.steps[warmup:]],
        "step_with_fill_s": round(mean([s["total"] for s in timed[::k]]), 4),
        "measure_wall_s": round(time.perf_counter() - t_start, 1),
    }


def projected_seconds(fwd_flops: float, fb_flops: float, rate_flops_per_s: Optional[float],
                      warmup: int, reps: int) -> Optional[float]:
    """Projected worker time: per repetition one training step (fill forward + forward +
    backward) and one bare forward + backward, at ``rate`` FLOP/s; None without a rate."""
    if not rate_flops_per_s:
        return None
    per_rep = (fwd_flops + 2.0 * fb_flops) / rate_flops_per_s
    return (warmup + reps) * per_rep + 5.0


def plan_batch(device: torch.device, arch: str, cube: int, batch: Optional[int]) -> int:
    """The batch of a configuration: given, else 1 pair on the CPU, the trainer's auto rule on CUDA."""
    if batch:
        return int(batch)
    if device.type == "cuda":
        from isonet2core.training.trainer import auto_batch_size

        return auto_batch_size([device], arch, cube)
    return 1
