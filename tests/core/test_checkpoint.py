"""Model files: round trip, validation of foreign/corrupt files, compatibility, file names."""
import os
from pathlib import Path

import numpy as np
import pytest
import torch

from isonet2core.config import TrainConfig, to_dict
from isonet2core.io import model_file as ck
from isonet2core.io import output_names
from isonet2core.nets.registry import build


def _state(model, **extra):
    state = dict(model_state=model.state_dict(), arch="plain-unet-small", cube_size=16, method="isonet2-n2n",
                 config=to_dict(TrainConfig(arch="plain-unet-small", cube_size=16)), epoch=3,
                 normalization={"tomo_001": {"mean": 0.5, "std": 2.0}},
                 rng_state={"torch": torch.get_rng_state(), "numpy_seed": [1, 2, 3]},
                 history={"loss": [1.0, 0.5]})
    state.update(extra)
    return state


@pytest.fixture(scope="module")
def small_model():
    torch.manual_seed(0)
    model = build("plain-unet-small")
    torch.nn.init.normal_(model.head.weight, std=0.05)
    return model


def test_round_trip_rebuilds_the_same_network(tmp_path, small_model):
    path = output_names.model_path(tmp_path / "run", "isonet2-n2n", "plain-unet-small", 16)
    assert path.name == "network_isonet2-n2n_plain-unet-small_16_full.pt"
    ck.save_checkpoint(path, _state(small_model))
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no temporary left behind
    ckpt = ck.load_checkpoint(path)
    assert ckpt["format"] == ck.FORMAT and ckpt["format_version"] == ck.FORMAT_VERSION
    assert ckpt["config"]["arch"] == "plain-unet-small" and ckpt["epoch"] == 3
    assert ckpt["normalization"]["tomo_001"]["std"] == 2.0
    model = ck.build_model(ckpt).eval()
    x = torch.randn(1, 1, 16, 16, 16)
    with torch.inference_mode():
        torch.testing.assert_close(model(x), small_model.eval()(x), rtol=0, atol=0)
    with pytest.raises(ValueError, match="model2_state"):
        ck.build_model(ckpt, "model2_state")


def test_model2_state_and_epoch_names(tmp_path, small_model):
    other = build("plain-unet-small")
    path = output_names.model_path(tmp_path, "n2n", "plain-unet-small", 16, epoch=7)
    assert path.name == "network_n2n_plain-unet-small_16_epoch007.pt"
    ck.save_checkpoint(path, _state(small_model, model2_state=other.state_dict(), method="n2n"))
    ckpt = ck.load_checkpoint(path)
    m2 = ck.build_model(ckpt, "model2_state")
    assert torch.equal(m2.head.weight, torch.zeros_like(m2.head.weight))


def test_save_refuses_non_plain_values_before_writing(tmp_path, small_model):
    path = tmp_path / "m.pt"
    with pytest.raises(ValueError, match=r"rng_state\.numpy"):
        ck.save_checkpoint(path, _state(small_model, rng_state={"numpy": np.random.get_state()}))
    with pytest.raises(ValueError, match="cube_size"):
        ck.save_checkpoint(path, _state(small_model, cube_size=20))
    with pytest.raises(ValueError, match="lacks the keys arch"):
        state = _state(small_model)
        del state["arch"]
        ck.save_checkpoint(path, state)
    assert list(tmp_path.iterdir()) == []


def test_foreign_and_corrupt_files_are_rejected_by_name(tmp_path, small_model):
    with pytest.raises(FileNotFoundError, match="missing.pt"):
        ck.load_checkpoint(tmp_path / "missing.pt")
    junk = tmp_path / "junk.pt"
    junk.write_bytes(os.urandom(4096))
    with pytest.raises(ValueError, match="junk.pt"):
        ck.load_checkpoint(junk)
    foreign = tmp_path / "foreign.pt"
    torch.save({"state_dict": small_model.state_dict()}, foreign)
    with pytest.raises(ValueError, match="foreign.pt.*not an isonet2core checkpoint"):
        ck.load_checkpoint(foreign)
    good = ck.save_checkpoint(tmp_path / "good.pt", _state(small_model))
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(ValueError, match="truncated.pt"):
        ck.load_checkpoint(truncated)
    # ours in format but with keys missing or weights of another architecture
    partial = tmp_path / "partial.pt"
    torch.save({"format": ck.FORMAT, "format_version": 1, "arch": "plain-unet-small"}, partial)
    with pytest.raises(ValueError, match="partial.pt.*lacks the keys model_state, cube_size, method"):
        ck.load_checkpoint(partial)
    newer = tmp_path / "newer.pt"
    torch.save(dict(_state(small_model), format=ck.FORMAT, format_version=99), newer)
    with pytest.raises(ValueError, match="newer.pt.*version 99"):
        ck.load_checkpoint(newer)
    mismatch = ck.save_checkpoint(tmp_path / "mismatch.pt", _state(small_model, arch="unet-medium"))
    with pytest.raises(ValueError, match="do not fit architecture 'unet-medium'"):
        ck.build_model(ck.load_checkpoint(mismatch))
    # a pickle that would run code is refused, not executed
    evil = tmp_path / "evil.pt"
    torch.save({"format": ck.FORMAT, "obj": Path("x")}, evil)
    with pytest.raises(ValueError, match="evil.pt"):
        ck.load_checkpoint(evil)


def test_check_compatible_names_both(tmp_path, small_model):
    ckpt = ck.load_checkpoint(ck.save_checkpoint(tmp_path / "m.pt", _state(small_model)))
    ck.check_compatible(ckpt, arch="plain-unet-small", cube_size=16)
    ck.check_compatible(ckpt)
    with pytest.raises(ValueError, match="m.pt holds a 'plain-unet-small'.*'unet-medium'"):
        ck.check_compatible(ckpt, arch="unet-medium", name=str(tmp_path / "m.pt"))
    with pytest.raises(ValueError, match="cube_size 16.*cube_size 96"):
        ck.check_compatible(ckpt, cube_size=96)


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
    ckpt = ck.load_checkpoint(path)
    assert ckpt["source"] == "IsoNet2" and ckpt["arch"] == "unet-small" and ckpt["cube_size"] == 16
    assert ckpt["config"]["ctf_mode"] == "network" and ckpt["config"]["do_phaseflip_input"] is True
    model = ck.build_model(ckpt).eval()
    x = torch.randn(2, 1, 16, 16, 16)
    with torch.inference_mode():
        torch.testing.assert_close(model(x), -net(-x), rtol=0, atol=0)
    # the inversion lives in the weights: fine-tuning (pretrained_model) loads them into a
    # plain unet-small of ours and gets the same function
    ours = build("unet-small").eval()
    ours.load_state_dict(ckpt["model_state"])
    with torch.inference_mode():
        torch.testing.assert_close(ours(x), -net(-x), rtol=0, atol=0)
    official["arch"] = "scunet-fast"
    torch.save(official, tmp_path / "sc.pt")
    with pytest.raises(ValueError, match="scunet-fast.*not supported"):
        ck.load_checkpoint(tmp_path / "sc.pt")
