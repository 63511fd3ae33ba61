"""What a checkpoint holds of one training process, and the files written from it.

:class:`TrainingState`: the network(s) (two for split halves), the fused AdamW optimiser, the
gradient scaler (float16 autocast), with ``ema_decay`` the weight averages (:mod:`.ema`), the
loss history and the epoch training starts after; the
start point (``run.resume``: weights, optimiser, scaler and history of a checkpoint;
``run.pretrained_model``: weights only); the networks as called (DistributedDataParallel on
several processes, ``torch.compile`` with ``compile_model``). :meth:`TrainingState.save` writes
the model files, ``loss_history.json``, ``config.json`` and ``loss.png`` after an epoch (names:
:mod:`isonet2core.io.output_names`; contents: :mod:`isonet2core.training.trainer`).
"""
from __future__ import annotations

import copy
import json
import logging
from pathlib import Path
from typing import TYPE_CHECKING, List, Sequence

import torch
from torch import nn

from isonet2core import __version__
from isonet2core import config as config_mod
from isonet2core.config import TrainConfig
from isonet2core.device import autocast_dtype
from isonet2core.io import atomic, output_names
from isonet2core.io.model_file import ModelFile
from isonet2core.nets.registry import build
from isonet2core.nets.unet import compiled
from isonet2core.report import figures
from isonet2core.training import sampler
from isonet2core.training.ema import ema_decay_at, update_ema

if TYPE_CHECKING:
    from isonet2core.training.spec import RunSettings, TomogramSpec

log = logging.getLogger(__name__)

RESUMABLE_CHANGES = ("epochs", "save_interval", "with_preview", "prev_tomo_idx")
"""Settings a resumed run may change without a warning."""


def has_batch_norm(model: nn.Module) -> bool:
    """Whether a network has a batch-normalisation layer.

    Parameters
    ----------
    model : nn.Module
        The network.

    Returns
    -------
    bool
        True with one.
    """
    return any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules())


class TrainingState:
    """Networks, optimiser, scaler and history of one training process on ``device`` (one of
    ``world`` processes), started as ``run`` says."""

    def __init__(self, cfg: TrainConfig, run: RunSettings, device: torch.device, world: int):
        self.cfg, self.run, self.device = cfg, run, device
        torch.manual_seed(cfg.seed)
        self.models = [build(cfg.arch).to(device)]
        if cfg.split_halves:
            self.models.append(build(cfg.arch).to(device))
        if world > 1 and device.type == "cuda":
            # batch statistics over all GPUs' cubes, as one process would compute them
            self.models = [nn.SyncBatchNorm.convert_sync_batchnorm(m) for m in self.models]
        # oneDNN's 3D convolutions are about 1.6x faster channels-last on the CPU (measured,
        # unet-small, 32^3 cubes); the layout does not change the state dict's values
        self.memory_format = torch.channels_last_3d if device.type == "cpu" else torch.contiguous_format
        self.models = [m.to(memory_format=self.memory_format) for m in self.models]  # type: ignore[call-overload]
        self.batch_norm = has_batch_norm(self.models[0])
        self.amp = autocast_dtype(device, cfg.mixed_precision, cfg.amp_dtype, training=True,
                                  cube_size=cfg.cube_size)
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.amp == torch.float16)
        params = [p for m in self.models for p in m.parameters()]
        # fused kernel: one pass over all parameters (the CPU default loops per tensor, and is
        # slow on the denormal second moments that training produces)
        self.optimizer = torch.optim.AdamW(params, lr=cfg.learning_rate, fused=True)
        self.history: List[dict] = []
        self.start_epoch = 0
        self.ema_models: List[nn.Module] = []
        self.ema_updates = 0
        self._load_start_point()
        if world > 1:
            ids = [device.index] if device.type == "cuda" else None
            train_models: List[nn.Module] = [nn.parallel.DistributedDataParallel(m, device_ids=ids)
                                             for m in self.models]
        else:
            train_models = list(self.models)
        # the networks as called (compiled or not); self.models keep the weights and state dicts
        self.fill_models = [compiled(m, cfg.compile_model) for m in self.models]
        self.train_models = [compiled(m, cfg.compile_model) for m in train_models]

    def _load_start_point(self) -> None:
        cfg, run = self.cfg, self.run
        if run.resume is not None:
            start = ModelFile.load(run.resume, map_location=self.device)
            old = start.config
            changed = [k for k, v in config_mod.to_dict(cfg).items()
                       if k in old and old[k] != v and k not in RESUMABLE_CHANGES]
            if changed:
                log.warning("resuming %s with changed settings: %s", run.resume,
                            ", ".join(f"{k} {old[k]!r} -> {getattr(cfg, k)!r}" for k in changed))
            # with an average, model_state is the average and train_model_state the trained weights
            trained, trained2 = start.training_states()
            if start.optimizer_state is None or start.epoch is None:
                raise ValueError(f"{run.resume} holds no optimiser state or epoch; it cannot be resumed")
            self.models[0].load_state_dict(trained)
            averages = [start.model_state]
            if cfg.split_halves:
                if trained2 is None or start.model2_state is None:
                    raise ValueError(f"{run.resume} holds no second network; split_halves cannot resume from it")
                self.models[1].load_state_dict(trained2)
                averages.append(start.model2_state)
            if cfg.ema_decay is not None and start.train_model_state is not None:
                self._start_ema(averages, int(start.ema_updates))
            self.optimizer.load_state_dict(start.optimizer_state)
            if start.scaler_state and self.scaler.is_enabled():
                self.scaler.load_state_dict(start.scaler_state)
            self.start_epoch = int(start.epoch)
            self.history = [dict(h) for h in start.history if int(h["epoch"]) <= self.start_epoch]
            if self.start_epoch >= cfg.epochs:
                log.warning("%s already trained %d of %d epochs: nothing left to do",
                            run.resume, self.start_epoch, cfg.epochs)
            log.info("resuming from %s after epoch %d", run.resume, self.start_epoch)
        elif run.pretrained_model is not None:
            start = ModelFile.load(run.pretrained_model, map_location=self.device)
            self.models[0].load_state_dict(start.model_state)
            if cfg.split_halves:
                self.models[1].load_state_dict(start.model2_state or start.model_state)
            log.info("fine-tuning the weights of %s", run.pretrained_model)
        if cfg.ema_decay is not None and not self.ema_models:
            self._start_ema([m.state_dict() for m in self.models], 0)

    def _start_ema(self, states: Sequence[dict], updates: int) -> None:
        """Averaged copies of the networks holding ``states`` after ``updates`` updates."""
        self.ema_models = []
        for model, state in zip(self.models, states):
            ema = copy.deepcopy(model)
            ema.load_state_dict(state)
            ema.eval()
            self.ema_models.append(ema)
        self.ema_updates = updates

    @property
    def predict_models(self) -> List[nn.Module]:
        """The networks that predict: the weight averages with ``ema_decay``, else the trained ones."""
        return self.ema_models or self.models

    def optimizer_step(self, total_loss: torch.Tensor, step: int, last: bool) -> bool:
        """Back-propagate a loss and step the optimiser every ``acc_batches`` steps and after the last
        step of an epoch; then move the weight averages (``ema_decay``). In bfloat16 on the CPU,
        gradients whose norm is not finite (oneDNN's garbage weight gradients, see
        :data:`isonet2core.device.CPU_BF16_MIN_CUBE`, or an overflow) are dropped instead, and the
        state trains in float32 from then on (``amp`` None). On CUDA the check is not made (it
        would wait for the backward pass before the optimiser step; the loss check after the
        step stays).

        Parameters
        ----------
        total_loss : torch.Tensor
            Scalar, scaled by ``1 / acc_batches`` here.
        step : int
            0-based step in the epoch.
        last : bool
            The epoch's last step.

        Returns
        -------
        bool
            False when the step's gradients were dropped (bfloat16 fallback), else True.
        """
        self.scaler.scale(total_loss / self.cfg.acc_batches).backward()
        if (step + 1) % self.cfg.acc_batches == 0 or last:
            if self.amp == torch.bfloat16 and self.device.type == "cpu" and not self._gradients_finite():
                log.warning("step %d: the bfloat16 gradients are not finite; the step is not applied "
                            "and training goes on in float32", step + 1)
                self.amp = None
                self.optimizer.zero_grad(set_to_none=True)
                return False
            self.scaler.step(self.optimizer)
            self.scaler.update()
            self.optimizer.zero_grad(set_to_none=True)
            if self.ema_models:
                assert self.cfg.ema_decay is not None
                decay = ema_decay_at(self.cfg.ema_decay, self.ema_updates)
                for ema, model in zip(self.ema_models, self.models):
                    update_ema(ema, model, decay)
                self.ema_updates += 1
        return True

    def _gradients_finite(self) -> bool:
        """Whether the norm of all gradients is finite (a gradient of 1e20 or more overflows it)."""
        grads = [p.grad for group in self.optimizer.param_groups for p in group["params"]
                 if p.grad is not None]
        return bool(torch.isfinite(torch.nn.utils.get_total_norm(grads)))

    def checkpoint(self, epoch: int, batch_size: int, tomograms: Sequence[TomogramSpec],
                   sources: Sequence[sampler.TomogramSource]) -> ModelFile:
        """Everything a model file holds after an epoch.

        Parameters
        ----------
        epoch : int
            The epoch just trained.
        batch_size : int
            Cubes per step.
        tomograms : sequence of TomogramSpec
            What was trained on (microscope, maps, mask).
        sources : sequence of sampler.TomogramSource
            Their normalisation.

        Returns
        -------
        ModelFile
            The model file's content.
        """
        cfg = self.cfg
        tomos = {t.name: {**config_mod.to_dict(t.microscope),
                          "maps": [str(p) for p in t.map_paths],
                          "mask": None if t.mask_path is None else str(t.mask_path),
                          "n_subtomos": t.n_subtomos} for t in tomograms}
        norm = {s.name: {"mean": s.stats[0][0], "std": s.stats[0][1],
                         "maps": [{"mean": m, "std": sd} for m, sd in s.stats]} for s in sources}
        predicting = self.predict_models
        averaged = bool(self.ema_models)
        return ModelFile(
            model_state=predicting[0].state_dict(),
            model2_state=predicting[1].state_dict() if cfg.split_halves else None,
            train_model_state=self.models[0].state_dict() if averaged else None,
            train_model2_state=self.models[1].state_dict() if averaged and cfg.split_halves else None,
            ema_updates=self.ema_updates if averaged else 0,
            arch=cfg.arch, cube_size=cfg.cube_size, method=cfg.method,
            config=config_mod.to_dict(cfg), batch_size=batch_size, epoch=epoch,
            optimizer_state=self.optimizer.state_dict(),
            scheduler_state={"kind": "cosine-per-epoch", "epochs": cfg.epochs,
                             "learning_rate": cfg.learning_rate,
                             "learning_rate_min": cfg.learning_rate_min, "last_epoch": epoch},
            scaler_state=self.scaler.state_dict() if self.scaler.is_enabled() else None,
            rng_state={"scheme": "numpy default_rng([seed, epoch, stream]); torch noise generator "
                                 "seeded from stream 2 + rank", "seed": cfg.seed,
                       "next_epoch": epoch + 1, "torch_cpu": torch.get_rng_state()},
            normalization=norm, tomograms=tomos, history=list(self.history),
            command_line=list(self.run.command_line))

    def save(self, epoch: int, batch_size: int, tomograms: Sequence[TomogramSpec],
             sources: Sequence[sampler.TomogramSource]) -> List[Path]:
        """Write the files of an epoch: the ``_full`` model (always), the epoch copy (every
        ``save_interval`` epochs and after the last), history, settings and loss plot.

        Parameters
        ----------
        epoch : int
            The epoch just trained.
        batch_size : int
            Cubes per step.
        tomograms : sequence of TomogramSpec
            What was trained on.
        sources : sequence of sampler.TomogramSource
            Their normalisation.

        Returns
        -------
        list of Path
            The model files written.
        """
        cfg, out = self.cfg, self.run.output_dir
        state = self.checkpoint(epoch, batch_size, tomograms, sources)
        written = [state.save(output_names.model_path(out, cfg.method, cfg.arch, cfg.cube_size))]
        if epoch % cfg.save_interval == 0 or epoch == cfg.epochs:
            written.append(state.save(output_names.model_path(out, cfg.method, cfg.arch, cfg.cube_size, epoch)))
        atomic.write_text(out / output_names.HISTORY_FILE, json.dumps(self.history, indent=2, default=str))
        settings = {"config": state.config, "batch_size": batch_size, "tomograms": state.tomograms,
                    "normalization": state.normalization, "isonet2core_version": __version__,
                    "command_line": state.command_line}
        atomic.write_text(out / output_names.CONFIG_FILE, json.dumps(settings, indent=2, default=str))
        figures.plot_loss_history(self.history, out / output_names.LOSS_PNG)
        return written
