"""Model files (:class:`ModelFile`): round trip, validation of foreign/corrupt files, compatibility,
file names, the IsoNet2 program's files."""
import dataclasses
import os
from pathlib import Path

import numpy as np
import pytest
import torch

from isonet2core.config import TrainConfig, to_dict
from isonet2core.io import model_file as ck
from isonet2core.io import output_names
from isonet2core.io.model_file import ModelFile
from isonet2core.nets.registry import build


def _state(model, **extra) -> ModelFile:
    state = dict(model_state=model.state_dict(), arch="plain-unet-small", cube_size=16, method="isonet2-n2n",
                 config=to_dict(TrainConfig(arch="plain-unet-small", cube_size=16)), epoch=3,
                 normalization={"tomo_001": {"mean": 0.5, "std": 2.0}},
                 rng_state={"torch": torch.get_rng_state(), "numpy_seed": [1, 2, 3]},
                 history=[{"epoch": 1, "loss": 1.0}, {"epoch": 2, "loss": 0.5}])
    state.update(extra)
    return ModelFile(**state)


@pytest.fixture(scope="module")
def small_model():
    torch.manual_seed(0)
    model = build("plain-unet-small")
    torch.nn.init.normal_(model.head.weight, std=0.05)
    return model


def test_round_trip_rebuilds_the_same_network(tmp_path, small_model):
    path = output_names.model_path(tmp_path / "run", "isonet2-n2n", "plain-unet-small", 16)
    assert path.name == "network_isonet2-n2n_plain-unet-small_16_full.pt"
    _state(small_model).save(path)
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no temporary left behind
    raw = torch.load(path, weights_only=True)
    assert raw["format"] == ck.FORMAT and raw["format_version"] == ck.FORMAT_VERSION
    assert set(raw) == {"format", "format_version", *ck.FIELDS}
    ckpt = ModelFile.load(path)
    assert ckpt.config["arch"] == "plain-unet-small" and ckpt.epoch == 3 and ckpt.resumable is False
    assert ckpt.normalization["tomo_001"]["std"] == 2.0 and [h["loss"] for h in ckpt.history] == [1.0, 0.5]
    assert ckpt.source is None and not ckpt.split_halves
    model = ckpt.network().eval()
    x = torch.randn(1, 1, 16, 16, 16)
    with torch.inference_mode():
        torch.testing.assert_close(model(x), small_model.eval()(x), rtol=0, atol=0)
    with pytest.raises(ValueError, match="no second"):
        ckpt.network(second=True)
    # every field survives the round trip
    again = ModelFile.load(ckpt.save(tmp_path / "again.pt"))
    for f in dataclasses.fields(ModelFile):
        if f.name not in ("model_state", "rng_state"):
            assert getattr(again, f.name) == getattr(ckpt, f.name), f.name


def test_model2_state_and_epoch_names(tmp_path, small_model):
    other = build("plain-unet-small")
    path = output_names.model_path(tmp_path, "n2n", "plain-unet-small", 16, epoch=7)
    assert path.name == "network_n2n_plain-unet-small_16_epoch007.pt"
    _state(small_model, model2_state=other.state_dict(), method="n2n").save(path)
    ckpt = ModelFile.load(path)
    assert ckpt.split_halves
    m2 = ckpt.network(second=True)
    assert torch.equal(m2.head.weight, torch.zeros_like(m2.head.weight))


def test_save_refuses_non_plain_values_before_writing(tmp_path, small_model):
    path = tmp_path / "m.pt"
    with pytest.raises(ValueError, match=r"rng_state\.numpy"):
        _state(small_model, rng_state={"numpy": np.random.get_state()}).save(path)
    with pytest.raises(ValueError, match="cube_size"):
        _state(small_model, cube_size=20).save(path)
    with pytest.raises(ValueError, match="unknown method 'n2n2'"):
        _state(small_model, method="n2n2").save(path)
    assert list(tmp_path.iterdir()) == []


def test_training_states_and_trained_weights(small_model):
    """A file with weight averages: predict uses the averages, resume the trained weights."""
    other = build("plain-unet-small").state_dict()
    averaged = _state(small_model, train_model_state=other, ema_updates=4, optimizer_state={"state": {}})
    assert averaged.resumable
    assert averaged.training_states()[0] is other and averaged.model_state is not other
    last = averaged.with_trained_weights()
    assert last.model_state is other and last.train_model_state is None and last.ema_updates == 0
    plain = _state(small_model)
    assert plain.with_trained_weights() is plain and plain.training_states()[0] is plain.model_state


def test_foreign_and_corrupt_files_are_rejected_by_name(tmp_path, small_model):
    with pytest.raises(FileNotFoundError, match="missing.pt"):
        ModelFile.load(tmp_path / "missing.pt")
    junk = tmp_path / "junk.pt"
    junk.write_bytes(os.urandom(4096))
    with pytest.raises(ValueError, match="junk.pt"):
        ModelFile.load(junk)
    foreign = tmp_path / "foreign.pt"
    torch.save({"state_dict": small_model.state_dict()}, foreign)
    with pytest.raises(ValueError, match="foreign.pt.*not an isonet2core checkpoint"):
        ModelFile.load(foreign)
    good = _state(small_model).save(tmp_path / "good.pt")
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(ValueError, match="truncated.pt"):
        ModelFile.load(truncated)
    # ours in format but with keys missing or weights of another architecture
    partial = tmp_path / "partial.pt"
    torch.save({"format": ck.FORMAT, "format_version": 1, "arch": "plain-unet-small"}, partial)
    with pytest.raises(ValueError, match="partial.pt.*lacks the keys model_state, cube_size, method"):
        ModelFile.load(partial)
    newer = tmp_path / "newer.pt"
    torch.save(dict(dataclasses.asdict(_state(small_model)), format=ck.FORMAT, format_version=99), newer)
    with pytest.raises(ValueError, match="newer.pt.*version 99"):
        ModelFile.load(newer)
    mismatch = _state(small_model, arch="unet-medium").save(tmp_path / "mismatch.pt")
    with pytest.raises(ValueError, match="mismatch.pt: weights of the network do not fit architecture 'unet-medium'"):
        ModelFile.load(mismatch).network(name=str(mismatch))
    # a pickle that would run code is refused, not executed
    evil = tmp_path / "evil.pt"
    torch.save({"format": ck.FORMAT, "obj": Path("x")}, evil)
    with pytest.raises(ValueError, match="evil.pt"):
        ModelFile.load(evil)


def test_check_compatible_names_both(tmp_path, small_model):
    ckpt = ModelFile.load(_state(small_model).save(tmp_path / "m.pt"))
    ckpt.check_compatible(arch="plain-unet-small", cube_size=16)
    ckpt.check_compatible()
    with pytest.raises(ValueError, match="m.pt holds a 'plain-unet-small'.*'unet-medium'"):
        ckpt.check_compatible(arch="unet-medium", name=str(tmp_path / "m.pt"))
    with pytest.raises(ValueError, match="cube_size 16.*cube_size 96"):
        ckpt.check_compatible(cube_size=96)


def test_isonet2_program_model_files_load_with_their_contrast(tmp_path):
    """A file laid out as the IsoNet2 program writes it (its keys, DDP's 'module.' prefix, numpy
    loss arrays) loads as our unet-small, wrapped to take and give protein-dark maps."""
    import numpy as np

    torch.manual_seed(3)
    net = build("unet-small").eval()
    official = {"method": "isonet2-n2n", "CTF_mode": "network", "do_phaseflip_input": True,
                "arch": "unet-small", "cube_size": 16,
                "model_state_dict": {"module." + k: v for k, v in net.state_dict().items()},
                "metrics": {"average_loss": [np.array(0.5, dtype=np.float32)], "inside_loss": [np.float64(0.1)]}}
    path = tmp_path / "network_isonet2-n2n_unet-small_16_full.pt"
    torch.save(official, path)
    ckpt = ModelFile.load(path)
    assert ckpt.source == ck.PROGRAM_SOURCE and ckpt.arch == "unet-small" and ckpt.cube_size == 16
    assert ckpt.config["ctf_mode"] == "network" and ckpt.config["do_phaseflip_input"] is True
    assert not ckpt.resumable
    model = ckpt.network().eval()
    x = torch.randn(2, 1, 16, 16, 16)
    with torch.inference_mode():
        torch.testing.assert_close(model(x), -net(-x), rtol=0, atol=0)
    # the inversion lives in the weights: fine-tuning (pretrained_model) loads them into a
    # plain unet-small of ours and gets the same function
    ours = build("unet-small").eval()
    ours.load_state_dict(ckpt.model_state)
    with torch.inference_mode():
        torch.testing.assert_close(ours(x), -net(-x), rtol=0, atol=0)
    official["arch"] = "scunet-fast"
    torch.save(official, tmp_path / "sc.pt")
    with pytest.raises(ValueError, match="scunet-fast.*not supported"):
        ModelFile.load(tmp_path / "sc.pt")
