"""The file and folder names the core writes: one module, names that parse back."""
import re
from pathlib import Path

from isonet2core.io import output_names as fn


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
    assert fn.safe_name("Zelle ä/1") == "Zelle_1_5b91f5"   # sha1 of the name, first 6 hex digits
    assert fn.safe_name("..") == "tomogram_9d891e"
    out, halves = fn.predicted_paths("o", "Zelle ä/1", fn.CORRECTED, prefix="run")
    assert out == Path("o/run_Zelle_1_5b91f5_corrected.mrc")
    assert halves == (Path("o/run_Zelle_1_5b91f5_corrected_half1.mrc"),
                      Path("o/run_Zelle_1_5b91f5_corrected_half2.mrc"))
    assert fn.predicted_paths("o", "TS_01", fn.DENOISED)[0] == Path("o/TS_01_denoised.mrc")
    preview = fn.preview_path("maps", "Zelle ä/1", 3)
    assert preview == Path("maps/preview/Zelle_1_5b91f5_epoch003.mrc")
    m = fn.PREVIEW_NAME.match(preview.name)
    assert (m["name"], int(m["epoch"])) == ("Zelle_1_5b91f5", 3)


def test_distinct_names_never_share_a_file():
    """Names that the character rule alone would merge ("tomo a" / "tomo_a", "tomo_α" / "tomo_β")
    get distinct stems; names of safe characters keep theirs."""
    names = ["tomo_a", "tomo a", "tomo/a", "tomo_α", "tomo_β", "tomo_", "_tomo", "tomo", "TS-1.2"]
    stems = [fn.safe_name(n) for n in names]
    assert len(set(stems)) == len(names), stems
    assert stems[0] == "tomo_a" and stems[-2:] == ["tomo", "TS-1.2"]
    assert all(re.fullmatch(r"[A-Za-z0-9._-]+", s) for s in stems)
