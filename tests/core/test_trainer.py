"""Training loop: files, resume equivalence, fine-tuning, two CPU processes (DDP, gloo)."""
import contextlib
import dataclasses
import json

import numpy as np
import pytest
import torch

from isonet2core.config import Microscope, TrainConfig
from isonet2core.io import mrcio, output_names
from isonet2core.io.model_file import ModelFile
from isonet2core.training import trainer

MIC = Microscope(pixel_size_a=10.0, defocus_a=20000.0, tilt_min_deg=-55.0, tilt_max_deg=60.0)


def _cfg(**kw):
    base = dict(method="isonet2-n2n", arch="unet-small", cube_size=16, epochs=2, batch_size=2,
                learning_rate=1e-3, learning_rate_min=1e-4, random_rot_weight=0.5, noise_level=0.1,
                save_interval=1, seed=7)
    base.update(kw)
    return TrainConfig(**base)


def _run(cfg, halves, out, subtomos=4, **kw):
    spec = trainer.TomogramSpec("tomo_a", halves, MIC, subtomos)
    return trainer.train(cfg, [spec], trainer.RunSettings(output_dir=out, device="cpu", ncpus=2,
                                                          progress=False, **kw))


def _weights(path, key="model_state"):
    return getattr(ModelFile.load(path), key)


def _assert_same(a, b):
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k


@pytest.mark.parametrize("kw", [dict(),
                                dict(method="n2n", split_halves=True, ctf_mode="network", acc_batches=2),
                                dict(method="n2n", split_halves=True, ema_decay=0.8)],
                         ids=["isonet2-n2n", "n2n-split-network", "n2n-split-ema"])
def test_resume_from_an_epoch_checkpoint_gives_the_uninterrupted_weights(halves, tmp_path, kw):
    cfg = _cfg(**kw)
    straight = _run(cfg, halves, tmp_path / "straight")
    first = _run(dataclasses.replace(cfg, epochs=1), halves, tmp_path / "resumed")
    # the 1-epoch run has the same schedule only if it knew the run is 2 epochs long: resume
    # from the epoch-1 checkpoint of the 2-epoch run instead, and check both give the same
    epoch1 = output_names.model_path(tmp_path / "straight", cfg.method, cfg.arch, 16, 1)
    resumed = _run(cfg, halves, tmp_path / "resumed2", resume=epoch1)
    _assert_same(_weights(straight.model_path), _weights(resumed.model_path))
    if cfg.ema_decay is not None:
        for key in ("train_model_state", "train_model2_state")[:1 + cfg.split_halves]:
            _assert_same(_weights(straight.model_path, key), _weights(resumed.model_path, key))
        assert _weights(straight.model_path, "ema_updates") == _weights(resumed.model_path, "ema_updates") > 0
    if cfg.split_halves:
        _assert_same(_weights(straight.model_path, "model2_state"), _weights(resumed.model_path, "model2_state"))
        assert not all(torch.equal(a, b) for a, b in zip(_weights(straight.model_path).values(),
                                                          _weights(straight.model_path, "model2_state").values()))
    assert [h["loss"] for h in straight.history] == [h["loss"] for h in resumed.history]
    # an interrupted run (epochs=1 written with its own schedule) still resumes: epoch 1 equals
    assert first.history[0]["loss"] == straight.history[0]["loss"]


def test_files_written_by_a_run(halves, tmp_path):
    cfg = _cfg(epochs=3, save_interval=2)
    result = _run(cfg, halves, tmp_path, command_line=("isonet2", "refine", "x.star"))
    names = sorted(p.name for p in tmp_path.iterdir())
    stem = "network_isonet2-n2n_unet-small_16"
    assert f"{stem}_full.pt" in names and f"{stem}_epoch002.pt" in names and f"{stem}_epoch003.pt" in names
    assert f"{stem}_epoch001.pt" not in names
    assert {"loss_history.json", "loss.png", "config.json"} <= set(names)
    assert [p.name for p in result.epoch_paths] == [f"{stem}_epoch002.pt", f"{stem}_epoch003.pt"]
    e2 = ModelFile.load(tmp_path / f"{stem}_epoch002.pt")
    full = ModelFile.load(result.model_path)
    assert e2.epoch == 2 and full.epoch == 3
    assert not all(torch.equal(e2.model_state[k], full.model_state[k]) for k in e2.model_state)
    for key in ("optimizer_state", "scheduler_state", "rng_state", "normalization", "tomograms", "history"):
        assert getattr(full, key), key
    assert full.config["mw_weight"] == cfg.mw_weight and full.command_line == ["isonet2", "refine", "x.star"]
    assert full.tomograms["tomo_a"]["tilt_min_deg"] == -55.0
    assert full.tomograms["tomo_a"]["defocus_a"] == 20000.0
    assert len(full.normalization["tomo_a"]["maps"]) == 2
    history = json.loads((tmp_path / "loss_history.json").read_text())
    assert [h["epoch"] for h in history] == [1, 2, 3]
    assert history[0]["learning_rate"] == pytest.approx(1e-3) and history[-1]["learning_rate"] == pytest.approx(1e-4)
    assert all(h["mw_loss"] > 0 and h["n2n_loss"] > 0 for h in history)
    for h in history:   # per-step times: one per step, together within the epoch's wall time
        assert len(h["step_seconds"]) == h["steps"] and min(h["step_seconds"]) > 0
        assert sum(h["step_seconds"]) <= h["seconds"] + 0.01
    assert json.loads((tmp_path / "config.json").read_text())["config"]["seed"] == 7


def test_pretrained_weights_start_a_new_run_and_must_fit(halves, tmp_path):
    cfg = _cfg(epochs=1)
    base = _run(cfg, halves, tmp_path / "a")
    tuned = _run(dataclasses.replace(cfg, learning_rate=1e-12, learning_rate_min=0.0), halves, tmp_path / "b",
                 pretrained_model=base.model_path)
    a, b = _weights(base.model_path), _weights(tuned.model_path)
    # the weights stay; batch normalisation's running statistics follow the new data
    learned = [k for k in a if "running_" not in k and "num_batches_tracked" not in k]
    assert len(learned) > 0.5 * len(a)
    assert all(torch.allclose(a[k], b[k], atol=1e-6) for k in learned)
    with pytest.raises(ValueError, match="trained with cube_size 16"):
        _run(dataclasses.replace(cfg, cube_size=32), halves, tmp_path / "c", pretrained_model=base.model_path)
    with pytest.raises(ValueError, match="'unet-small' network"):
        _run(dataclasses.replace(cfg, arch="unet-medium"), halves, tmp_path / "c", resume=base.model_path)
    with pytest.raises(ValueError, match="method isonet2-n2n, not n2n"):
        _run(dataclasses.replace(cfg, method="n2n"), halves, tmp_path / "c", resume=base.model_path)


def test_split_halves_needs_two_maps():
    """Split halves train one network per half: a single-map method is refused by the settings
    themselves, before any file is read."""
    with pytest.raises(ValueError, match="split_halves needs even/odd halves"):
        TrainConfig(method="isonet2", split_halves=True).validate()
    assert TrainConfig(method="n2n", split_halves=True).validate().split_halves


def test_cosine_schedule_and_batch_rule():
    assert trainer.cosine_lr(1, 10, 1e-3, 1e-4) == pytest.approx(1e-3)
    assert trainer.cosine_lr(10, 10, 1e-3, 1e-4) == pytest.approx(1e-4)
    assert 1e-4 < trainer.cosine_lr(5, 10, 1e-3, 1e-4) < 1e-3
    cpu = [torch.device("cpu")]
    assert trainer.auto_batch_size(cpu, "unet-medium", 96) == 2
    assert trainer.auto_batch_size(cpu, "unet-small", 32) == 4
    assert trainer.activation_bytes_per_cube("unet-medium", 96) > trainer.activation_bytes_per_cube("unet-small", 96)


def test_two_cpu_processes_train_like_one(halves, tmp_path):
    """DistributedDataParallel over 2 gloo processes, each half the batch: same weights as one
    process up to float rounding (denoise draws no noise, so both runs see the same data).
    Adam divides by the gradient's magnitude, so rounding differences of tiny gradients move a
    weight by up to a fraction of the learning rate (1e-3): 1e-4 separates rounding from a
    wrong split of the batch (which changes updates by about the learning rate).
    The plain U-Net: batch-normalised networks normalise by each process's own cubes on the
    CPU (SyncBatchNorm, which the trainer uses across GPUs, exists only on GPUs)."""
    cfg = _cfg(method="n2n", epochs=1, noise_level=0.0, arch="plain-unet-small", loss_func="L2")
    one = _run(cfg, halves, tmp_path / "one")
    two = _run(cfg, halves, tmp_path / "two", cpu_processes=2)
    a, b = _weights(one.model_path), _weights(two.model_path)
    assert max(float((a[k] - b[k]).abs().max()) for k in a) < 1e-4
    assert two.history[0]["loss"] == pytest.approx(one.history[0]["loss"], rel=1e-5)


@pytest.mark.parametrize("reuse, steps", [(1, 4), (2, 4), (3, 4)])
def test_fill_reuse_predicts_each_cube_batch_once_and_keeps_the_steps(halves, tmp_path, monkeypatch, reuse, steps):
    """With ``fill_reuse = k`` an epoch keeps its steps (8 cubes / batch 2 = 4), trains each cube
    batch in k consecutive steps and runs the no-grad fill prediction once per cube batch."""
    calls, loaded = [], []
    real_fill, real_load = trainer.targets.fill_predictions, trainer.sampler.load_batch

    def counting_fill(cubes, *a, **kw):
        calls.append(cubes.clone())
        return real_fill(cubes, *a, **kw)

    def counting_load(sources, refs, cube):
        loaded.append(tuple(r.centre for r in refs))
        return real_load(sources, refs, cube)

    monkeypatch.setattr(trainer.targets, "fill_predictions", counting_fill)
    monkeypatch.setattr(trainer.sampler, "load_batch", counting_load)
    spec = trainer.TomogramSpec("tomo_a", halves, MIC, 8)
    result = trainer.train(_cfg(epochs=1, fill_reuse=reuse), [spec],
                           trainer.RunSettings(output_dir=tmp_path, device="cpu", ncpus=2, progress=False))
    assert result.history[0]["steps"] == steps
    n_batches = -(-steps // reuse)
    assert len(calls) == n_batches and len(loaded) == n_batches
    assert len(set(loaded)) == n_batches            # distinct cube batches
    assert np.isfinite(result.history[0]["loss"])


def test_denoise_ignores_fill_reuse(halves, tmp_path):
    assert trainer.fill_reuse(_cfg(method="n2n", fill_reuse=3)) == 1
    assert trainer.fill_reuse(_cfg(fill_reuse=3)) == 3
    with pytest.raises(ValueError, match="fill_reuse"):
        _cfg(fill_reuse=0).validate()


def test_wedge_term_trains_with_its_own_loss_function(halves, tmp_path):
    """--mw_loss_func L2 beside loss_func FSC: one step from the same seed sees the same batch
    and weights, so the Noise2Noise term is the FSC run's and only the wedge term differs."""
    runs = {func: _run(_cfg(epochs=1, mw_loss_func=func), halves, tmp_path / str(func), subtomos=2).history[0]
            for func in (None, "L2")}
    assert runs[None]["steps"] == runs["L2"]["steps"] == 1
    assert runs["L2"]["n2n_loss"] == runs[None]["n2n_loss"]
    assert runs["L2"]["mw_loss"] != runs[None]["mw_loss"]
    for h in runs.values():
        assert h["loss"] == pytest.approx(h["n2n_loss"] + _cfg().mw_weight * h["mw_loss"], rel=1e-5)
    with pytest.raises(ValueError, match="mw_loss_func"):
        _cfg(mw_loss_func="L3").validate()


def test_previews_follow_prev_tomo_idx(halves, tmp_path):
    """--with_preview --prev_tomo_idx 2: the tomogram with rlnIndex 2 is predicted at each saved
    epoch (the official option); an index that is not trained falls back to the first."""
    specs = [trainer.TomogramSpec("tomo_a", halves, MIC, 2, index=1),
             trainer.TomogramSpec("tomo_b", halves, MIC, 2, index=2)]
    cfg = _cfg(epochs=1, arch="plain-unet-small", with_preview=True, prev_tomo_idx=(2,))
    trainer.train(cfg, specs, trainer.RunSettings(output_dir=tmp_path / "a", device="cpu", ncpus=2,
                                                  progress=False))
    assert sorted(p.name for p in (tmp_path / "a" / "preview").iterdir()) == ["tomo_b_epoch001.mrc"]
    data, _ = mrcio.read_mrc(tmp_path / "a" / "preview" / "tomo_b_epoch001.mrc")
    assert data.shape == (24, 32, 32) and np.isfinite(data).all()
    cfg = dataclasses.replace(cfg, prev_tomo_idx=(9,))
    trainer.train(cfg, specs, trainer.RunSettings(output_dir=tmp_path / "b", device="cpu", ncpus=2,
                                                  progress=False))
    assert sorted(p.name for p in (tmp_path / "b" / "preview").iterdir()) == ["tomo_a_epoch001.mrc"]
    with pytest.raises(ValueError, match="prev_tomo_idx"):
        _cfg(prev_tomo_idx=(0,)).validate()


@pytest.mark.slow
def test_compiled_model_trains_and_predicts_like_the_eager_one(halves, tmp_path):
    """``compile_model`` (torch.compile, the IsoNet2 program's --compile_model): one epoch gives
    the eager run's losses and, up to kernel rounding (which Adam's first steps amplify to a few
    learning rates in single weights), its network; the model file holds plain state-dict names
    (no ``_orig_mod.``), so it loads anywhere; predict through the compiled network gives the
    eager map. (Long test: inductor compiles for minutes on 2 cores.)"""
    from isonet2core.config import PredictConfig
    from isonet2core.nets.registry import build
    from isonet2core.steps.inference import predict_volume

    cfg = _cfg(epochs=1, noise_level=0.0)
    eager = _run(cfg, halves, tmp_path / "eager")
    comp = _run(dataclasses.replace(cfg, compile_model=True), halves, tmp_path / "compiled")
    assert comp.history[0]["loss"] == pytest.approx(eager.history[0]["loss"], rel=1e-3)
    a, b = _weights(eager.model_path), _weights(comp.model_path)
    assert a.keys() == b.keys() and not any(k.startswith("_orig_mod") for k in b)
    vol = mrcio.read_mrc(halves[0])[0]
    maps = []
    for state, compile_model in ((a, False), (b, False), (b, True)):
        model = build(cfg.arch)
        model.load_state_dict(state)
        maps.append(predict_volume(model, vol, cube_size=16, microscope=MIC,
                                   config=PredictConfig(compile_model=compile_model)))
    assert np.corrcoef(maps[0].ravel(), maps[1].ravel())[0, 1] > 0.999
    assert np.abs(maps[1] - maps[2]).max() < 1e-4 * np.abs(maps[1]).max()


def test_a_loss_that_stops_being_finite_stops_training_before_writing(halves, tmp_path):
    """Fine-tuning a trained network with a learning rate of 1e10 sends its weights to infinity
    in one step: training stops at the 2nd step with an error naming epoch, step and precision,
    writes no model file, and leaves the network it started from as it was."""
    cfg = _cfg(method="n2n", epochs=1, mixed_precision=False)
    base = _run(cfg, halves, tmp_path / "a")
    before = base.model_path.read_bytes()
    assert all(torch.isfinite(v).all() for v in _weights(base.model_path).values() if v.is_floating_point())
    wild = dataclasses.replace(cfg, learning_rate=1e10, learning_rate_min=1e10)
    with pytest.raises(FloatingPointError, match=r"epoch 1, step 2: the loss is not finite .*float32"):
        _run(wild, halves, tmp_path / "b", pretrained_model=base.model_path)
    assert not list((tmp_path / "b").glob("*.pt"))
    assert base.model_path.read_bytes() == before


@pytest.fixture
def bfloat16_in_float32_arithmetic(monkeypatch):
    """A CPU run in bfloat16 whose arithmetic is float32: the state, its checks and its records
    are bfloat16's, while autocast does nothing. What oneDNN's bfloat16 kernels compute differs
    from CPU to CPU (at cubes 16 and 32 some give non-finite weight gradients at any step, see
    :data:`isonet2core.device.CPU_BF16_MIN_CUBE`), so these tests must not depend on it."""
    from isonet2core import device
    monkeypatch.setattr(device, "cpu_has_native_bf16", lambda: True)
    monkeypatch.setattr(torch, "autocast", lambda *args, **kwargs: contextlib.nullcontext())


def test_a_bfloat16_step_with_non_finite_gradients_is_dropped_and_training_goes_on_in_float32(
        halves, tmp_path, bfloat16_in_float32_arithmetic, caplog):
    """Wild fine-tuning in bfloat16: the first step sends the weights to infinity, the second
    step's gradients are not finite, so that step is dropped and the run switches to float32;
    the third step's loss (float32 now) stops the run."""
    cfg = _cfg(method="n2n", epochs=1, mixed_precision=False)
    base = _run(cfg, halves, tmp_path / "a")
    wild = dataclasses.replace(cfg, learning_rate=1e10, learning_rate_min=1e10, mixed_precision=True,
                               amp_dtype="bfloat16")
    with caplog.at_level("WARNING"), \
            pytest.raises(FloatingPointError, match=r"epoch 1, step 3: the loss is not finite .*float32"):
        _run(wild, halves, tmp_path / "b", subtomos=8, pretrained_model=base.model_path)
    assert "step 2: the bfloat16 gradients are not finite" in caplog.text
    assert "step 1:" not in caplog.text
    assert not list((tmp_path / "b").glob("*.pt"))


def test_a_bfloat16_run_records_its_precision(halves, tmp_path, bfloat16_in_float32_arithmetic):
    """A sound bfloat16 run drops no step and says so in its history."""
    result = _run(_cfg(epochs=1, mixed_precision=True, amp_dtype="bfloat16"), halves, tmp_path)
    assert [(h["precision"], h["dropped_steps"]) for h in result.history] == [("bfloat16", 0)]
    plain = _run(_cfg(epochs=1, mixed_precision=False), halves, tmp_path / "fp32")
    assert [(h["precision"], h["dropped_steps"]) for h in plain.history] == [("float32", 0)]
