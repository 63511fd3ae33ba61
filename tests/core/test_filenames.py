"""The file and folder names the core writes: one module, names that parse back."""
from pathlib import Path

from isonet2core import filenames as fn


def test_model_names_parse_back_ours_and_the_programs():
    assert fn.model_name("isonet2-n2n", "unet-small", 48) == "network_isonet2-n2n_unet-small_48_full.pt"
    assert fn.model_name("n2n", "plain-unet-medium", 96, 7) == "network_n2n_plain-unet-medium_96_epoch007.pt"
    assert fn.model_path("run", "isonet2", "unet-large", 64) == Path("run/network_isonet2_unet-large_64_full.pt")
    for method in ("isonet2-n2n", "isonet2", "n2n"):
        for arch in ("unet-small", "plain-unet-medium", "scunet-fast"):
            for epoch in (None, 12):
                m = fn.MODEL_NAME.search("/x/" + fn.model_name(method, arch, 96, epoch))
                assert (m["method"], m["arch"], int(m["cube"])) == (method, arch, 96)
                assert m["epoch"] == (None if epoch is None else "012")
    assert fn.is_full_model("network_n2n_unet-small_48_full.pt")
    assert not fn.is_full_model("network_n2n_unet-small_48_epoch001.pt")
    assert fn.MODEL_NAME.search("model.pt") is None


def test_one_safe_name_for_every_output():
    """Predict outputs, previews and report figures use the same stem for a tomogram name,
    non-ASCII names included (two rules disagreed before)."""
    assert fn.safe_name("TS_01") == "TS_01"
    assert fn.safe_name("Zelle ä/1") == "Zelle_1"
    assert fn.safe_name("..") == "tomogram"
    out, halves = fn.predicted_paths("o", "Zelle ä/1", fn.CORRECTED, prefix="run")
    assert out == Path("o/run_Zelle_1_corrected.mrc")
    assert halves == (Path("o/run_Zelle_1_corrected_half1.mrc"), Path("o/run_Zelle_1_corrected_half2.mrc"))
    assert fn.predicted_paths("o", "TS_01", fn.DENOISED)[0] == Path("o/TS_01_denoised.mrc")
    preview = fn.preview_path("maps", "Zelle ä/1", 3)
    assert preview == Path("maps/preview/Zelle_1_epoch003.mrc")
    m = fn.PREVIEW_NAME.match(preview.name)
    assert (m["name"], int(m["epoch"])) == ("Zelle_1", 3)
