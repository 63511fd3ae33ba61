"""Weight averaging (``ema_decay``): the warm-up rule, the update arithmetic, the checkpoint."""
import pytest
import torch
from torch import nn

from isonet2core.config import Microscope, TrainConfig
from isonet2core.io.model_file import ModelFile
from isonet2core.training import trainer
from isonet2core.training.ema import ema_decay_at, update_ema

MIC = Microscope(pixel_size_a=10.0, defocus_a=20000.0, tilt_min_deg=-55.0, tilt_max_deg=60.0)


def test_warm_up_rule_known_values():
    assert ema_decay_at(0.99, 0) == pytest.approx(0.1)
    assert ema_decay_at(0.99, 90) == pytest.approx(0.91)
    assert ema_decay_at(0.99, 10_000) == 0.99
    assert ema_decay_at(0.5, 100) == 0.5
    for bad in (0.0, 1.0, -0.1):
        with pytest.raises(ValueError, match="ema decay"):
            ema_decay_at(bad, 0)
    with pytest.raises(ValueError, match="updates"):
        ema_decay_at(0.9, -1)


def test_update_moves_floats_and_copies_counters():
    torch.manual_seed(0)
    live, ema = nn.Sequential(nn.Linear(3, 2), nn.BatchNorm1d(2)), nn.Sequential(nn.Linear(3, 2), nn.BatchNorm1d(2))
    live.train()
    live(torch.randn(5, 3))                      # running statistics and the counter move
    before = {k: v.clone() for k, v in ema.state_dict().items()}
    update_ema(ema, live, 0.25)
    after, source = ema.state_dict(), live.state_dict()
    for k, v in after.items():
        if v.is_floating_point():
            torch.testing.assert_close(v, 0.25 * before[k] + 0.75 * source[k])
        else:
            assert torch.equal(v, source[k]) and int(v) == 1
    with pytest.raises(ValueError, match="decay"):
        update_ema(ema, live, 1.5)


def _train(halves, out, **kw):
    cfg = TrainConfig(**{**dict(method="isonet2-n2n", arch="unet-small", cube_size=16, epochs=2,
                                batch_size=2, learning_rate=1e-3, save_interval=1, seed=3), **kw})
    spec = trainer.TomogramSpec("tomo_a", halves, MIC, 4)
    result = trainer.train(cfg, [spec], trainer.RunSettings(output_dir=out, device="cpu", ncpus=2, progress=False))
    return ModelFile.load(result.model_path), result


def test_checkpoint_holds_the_average_for_predict_and_the_weights_for_resume(halves, tmp_path):
    ckpt, result = _train(halves, tmp_path / "ema", ema_decay=0.9)
    steps = sum(h["steps"] for h in result.history)
    assert ckpt.ema_updates == steps == 4
    avg, trained = ckpt.model_state, ckpt.train_model_state
    assert avg.keys() == trained.keys()
    assert any(not torch.equal(avg[k], trained[k]) for k in avg if avg[k].is_floating_point())
    # the average of the same run without averaging: the trained weights are the run's own
    plain, _ = _train(halves, tmp_path / "plain", ema_decay=None)
    assert plain.train_model_state is None
    for k in trained:
        torch.testing.assert_close(trained[k], plain.model_state[k], rtol=0, atol=0)


def test_a_vanishing_decay_averages_to_the_last_weights(halves, tmp_path):
    ckpt, _ = _train(halves, tmp_path, ema_decay=1e-9)
    for k, v in ckpt.model_state.items():
        torch.testing.assert_close(v, ckpt.train_model_state[k], rtol=1e-6, atol=1e-6)


def test_decay_validated_and_on_by_default():
    assert TrainConfig().ema_decay == 0.999 and TrainConfig(ema_decay=None).validate().ema_decay is None
    with pytest.raises(ValueError, match="ema_decay"):
        TrainConfig(ema_decay=1.0).validate()
