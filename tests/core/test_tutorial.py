"""The official IsoNet2 tutorial's command lines (its README, section 2.2), as pasted, on small
simulated data: each must do what the tutorial says.

Three adaptations, each a substitution the tutorial itself asks its reader to make or that
small data need: ``isonet.py`` is our ``isonet2``; ``--gpuID <ids>`` gets ``None`` (no GPU
here: the CPU); ``--input_column <column>`` gets ``rlnDenoisedTomoName`` (its item 1, after
denoise). Training steps get ``--epochs 1 --number_subtomos 1 --batch_size 1`` appended (the
last spelling of an option wins, as in the official program), so the tutorial's own options
(network, cube size, CTF mode, weights) all stay. Its refine trains cubes of 128 but its next
predict loads a ``_96_`` model: refine is run with ``--cube_size 96`` appended so that the
pasted predict line finds its file. About 3 minutes on 2 CPU cores (unet-medium at 96^3).
"""
import shlex
import shutil

import mrcfile
import numpy as np
import pytest

from isonet2core.cli.main import main
from isonet2core.io import star

SMALL_TRAINING = " --epochs 1 --number_subtomos 1 --batch_size 1"
TUTORIAL = [
    # (command as pasted, what small data append)
    ('isonet.py prepare_star --even tomograms_split/EVN --odd tomograms_split/ODD '
     '--create_average True --pixel_size 5.4 --defocus "[39057,14817]"', ""),
    ("isonet.py denoise tomograms.star --CTF_mode network --gpuID <ids>", SMALL_TRAINING),
    ("isonet.py predict tomograms.star denoise/network_n2n_unet-medium_96_full.pt --gpuID <ids>",
     ""),
    ("isonet.py deconv tomograms.star --snrfalloff 0.7 --deconvstrength 1", ""),
    ("isonet.py make_mask tomograms.star --density_percentage 50 --std_percentage 80 "
     "--input_column <column>", ""),
    ("isonet.py refine tomograms.star --method isonet2-n2n --cube_size 128 --epochs 70 "
     "--mw_weight 200 --CTF_mode network --bfactor 200 --gpuID <ids>",
     SMALL_TRAINING + " --cube_size 96"),
    ("isonet.py predict tomograms.star isonet_maps/network_isonet2-n2n_unet-medium_96_full.pt "
     "--gpuID <ids>", ""),
]


def _argv(pasted: str, appended: str):
    text = pasted.replace("<ids>", "None").replace("<column>", "rlnDenoisedTomoName")
    words = shlex.split(text + appended)
    assert words[0] == "isonet.py"
    return words[1:]


@pytest.mark.slow
def test_the_tutorials_command_lines_run_as_pasted(tmp_path, monkeypatch):
    # two tomograms as the tutorial's folders hold them: tomograms_split/EVN/TS_01_EVN.mrc ...
    assert main(["simulate", "--output_dir", str(tmp_path / "sim"), "--n_tomograms", "2",
                 "--shape", "96,96,96", "--pixel_size", "5.4", "--defocus", "30000",
                 "--seed", "2"]) == 0
    for half, tag in (("even", "EVN"), ("odd", "ODD")):
        folder = tmp_path / "tomograms_split" / tag
        folder.mkdir(parents=True)
        for i, name in enumerate(("TS_01", "TS_03"), start=1):
            shutil.copy(tmp_path / "sim" / half / f"tomo_{i:03d}.mrc", folder / f"{name}_{tag}.mrc")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("OMP_NUM_THREADS", "2")

    def table():
        return star.TomogramsTable.read(tmp_path / "tomograms.star")

    def paths(column):
        t = table()
        return [t.path(r, column) for r in range(len(t))]

    for pasted, appended in TUTORIAL:
        argv = _argv(pasted, appended)
        assert main(argv) == 0, pasted
        step = argv[0]
        if step == "prepare_star":
            t = table()
            assert [t.tomo_name(r) for r in range(len(t))] == ["TS_01", "TS_03"]
            assert [t.value(r, star.DEFOCUS) for r in range(2)] == [39057.0, 14817.0]
            assert all(t.microscope(r).pixel_size_a == 5.4 for r in range(2))
            assert all(p.name.endswith("EVN.mrc") for p in paths(star.TOMO_HALF1))
            assert all(p.exists() for p in paths(star.TOMO_FULL))     # the averages
        elif step == "denoise":
            assert (tmp_path / "denoise" / "network_n2n_unet-medium_96_full.pt").exists()
        elif step == "predict" and "denoise/" in pasted:
            assert all(p.exists() for p in paths(star.DENOISED))
        elif step == "deconv":
            assert all(p.exists() for p in paths(star.DECONV))
        elif step == "make_mask":
            for p in paths(star.MASK):
                values = np.unique(mrcfile.read(p))
                assert set(values.tolist()) <= {0.0, 1.0} and values.size == 2
        elif step == "refine":
            assert (tmp_path / "isonet_maps" / "network_isonet2-n2n_unet-medium_96_full.pt").exists()
        elif step == "predict":
            corrected = paths(star.CORRECTED)
            assert all(p.exists() for p in corrected)
            with mrcfile.open(corrected[0], permissive=True) as mrc:
                assert mrc.data.shape == (96, 96, 96) and np.isfinite(mrc.data).all()
