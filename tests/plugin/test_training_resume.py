"""Continue after a killed training step resumes from the step's own last checkpoint."""
import json

from isonet2scipion.protocols.train_base import STEP_ARGUMENTS_FILE, trainingResumeArgs

ARGS = ["refine", ["--epochs", "10", "--cube_size", "32"], "signature-1"]


def test_first_attempt_starts_fresh_and_records_its_arguments(tmp_path):
    model_dir = tmp_path / "model"
    assert trainingResumeArgs(str(model_dir), ARGS) == []
    assert json.loads((model_dir / STEP_ARGUMENTS_FILE).read_text()) == ARGS


def test_same_arguments_with_a_checkpoint_resume(tmp_path):
    model_dir = tmp_path / "model"
    trainingResumeArgs(str(model_dir), ARGS)
    assert trainingResumeArgs(str(model_dir), ARGS) == []          # killed before epoch 1 ended
    ckpt = model_dir / "network_isonet2-n2n_unet-small_32_full.pt"
    ckpt.write_bytes(b"checkpoint")
    assert trainingResumeArgs(str(model_dir), ARGS) == ["--resume", "True"]
    assert ckpt.read_bytes() == b"checkpoint"                       # kept for the core to resume


def test_changed_arguments_start_over_in_an_emptied_folder(tmp_path):
    model_dir = tmp_path / "model"
    trainingResumeArgs(str(model_dir), ARGS)
    (model_dir / "network_isonet2-n2n_unet-small_32_full.pt").write_bytes(b"old settings")
    (model_dir / "network_isonet2-n2n_unet-small_32_epoch010.pt").write_bytes(b"old settings")
    changed = ["refine", ["--epochs", "20", "--cube_size", "32"], "signature-1"]
    assert trainingResumeArgs(str(model_dir), changed) == []
    assert sorted(p.name for p in model_dir.iterdir()) == [STEP_ARGUMENTS_FILE]
    assert json.loads((model_dir / STEP_ARGUMENTS_FILE).read_text()) == changed
