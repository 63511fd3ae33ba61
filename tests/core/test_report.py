"""The report page: assembly (HTML + Markdown), and `isonet2 report` on a tiny synthetic run."""
import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch

from isonet2core.cli.main import main
from isonet2core.imaging import metrics, wedge
from isonet2core.io import mrcio, output_names, star
from isonet2core.report import figures, page

SHAPE = (32, 40, 40)
PIXEL = 8.0
TILT = (-60.0, 60.0)


def _png(path: Path) -> Path:
    fig = figures.orthoslice_figure([("a", np.random.default_rng(0).standard_normal((8, 8, 8)))], 10.0)
    return figures.save_figure(fig, path)


def test_write_report_pages(tmp_path):
    _png(tmp_path / "a b.png")
    sections = [page.ReportSection("Numbers <1>", "x < y & z",
                                     page.ReportTable(("name", "value|unit"), (("t1", "0.5"),))),
                page.ReportSection("Figures", images=(page.ReportImage("a b.png", "caption <b>"),))]
    pages = page.write_report(tmp_path, "Title & co", sections)
    assert set(pages) == {"html", "md"}
    html = pages["html"].read_text()
    assert "<h1>Title &amp; co</h1>" in html and "<h2>Numbers &lt;1&gt;</h2>" in html
    assert "<th>value|unit</th>" in html and "<td>0.5</td>" in html
    assert '<img src="a b.png" alt="caption &lt;b&gt;">' in html
    md = pages["md"].read_text()
    assert "| name | value\\|unit |" in md and "| t1 | 0.5 |" in md
    assert "![caption <b>](a%20b.png)" in md
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a b.png", "report.html", "report.md"]
    only_md = page.write_report(tmp_path / "x", "T", sections[:1], formats=("md",))
    assert list(only_md) == ["md"] and not (tmp_path / "x" / "report.html").exists()


def test_write_report_rejects_bad_pages(tmp_path):
    _png(tmp_path / "in.png")
    outside = _png(tmp_path.parent / f"{tmp_path.name}_outside.png")
    table = page.ReportTable(("a", "b"), (("1",),))
    for section, message in (
            (page.ReportSection("s", images=(page.ReportImage("missing.png", "c"),)), "missing.png"),
            (page.ReportSection("s", images=(page.ReportImage(f"../{outside.name}", "c"),)), "inside"),
            (page.ReportSection("s", images=(page.ReportImage(str(outside), "c"),)), "inside"),
            (page.ReportSection("s", table=table), "1 cells for 2 headers")):
        with pytest.raises(ValueError, match=message):
            page.write_report(tmp_path, "T", [section])
    with pytest.raises(ValueError, match="formats"):
        page.write_report(tmp_path, "T", [], formats=("pdf",))
    assert not (tmp_path / "report.html").exists()


# ---- `isonet2 report` on a tiny synthetic run ---------------------------------------------
def _wedged(volume: np.ndarray) -> np.ndarray:
    mask = wedge.wedge_mask(volume.shape, *TILT, dtype=torch.float64)
    return torch.fft.ifftn(torch.fft.fftn(torch.from_numpy(volume.astype(np.float64))) * mask).real.numpy()


def _blobs(rng) -> np.ndarray:
    """Protein-dark ground truth: a few negative Gaussian blobs on 0."""
    z, y, x = np.meshgrid(*[np.arange(n) for n in SHAPE], indexing="ij")
    vol = np.zeros(SHAPE)
    for _ in range(12):
        c = rng.uniform([8, 6, 6], [24, 34, 34])
        vol -= np.exp(-((z - c[0]) ** 2 + (y - c[1]) ** 2 + (x - c[2]) ** 2) / (2 * rng.uniform(1.5, 3) ** 2))
    return vol


@pytest.fixture(scope="module")
def run_folder(tmp_path_factory):
    """Raw halves (wedged ground truth + noise), corrected maps (ground truth + less noise),
    ground truth, a STAR file and a training folder as the trainer writes it."""
    root = tmp_path_factory.mktemp("run")
    rng = np.random.default_rng(0)
    gt = _blobs(rng)
    s = gt.std()
    maps = {"even/tomo_001.mrc": _wedged(gt + rng.standard_normal(SHAPE) * s),
            "odd/tomo_001.mrc": _wedged(gt + rng.standard_normal(SHAPE) * s),
            "ground_truth/tomo_001.mrc": gt}
    maps["full/tomo_001.mrc"] = 0.5 * (maps["even/tomo_001.mrc"] + maps["odd/tomo_001.mrc"])
    for h in (1, 2):
        maps[f"corrected/tomo_001_corrected_half{h}.mrc"] = gt + rng.standard_normal(SHAPE) * 0.4 * s
    maps["corrected/tomo_001_corrected.mrc"] = gt + rng.standard_normal(SHAPE) * 0.3 * s
    for name, vol in maps.items():
        mrcio.write_mrc(root / name, vol, PIXEL)
    table = star.TomogramsTable.from_records([{
        star.TOMO_NAME: "tomo_001", star.TOMO_FULL: "full/tomo_001.mrc",
        star.TOMO_HALF1: "even/tomo_001.mrc", star.TOMO_HALF2: "odd/tomo_001.mrc",
        star.PIXEL_SIZE: PIXEL, star.TILT_MIN: TILT[0], star.TILT_MAX: TILT[1],
        star.CORRECTED: "corrected/tomo_001_corrected.mrc",
        star.CORRECTED_HALF1: "corrected/tomo_001_corrected_half1.mrc",
        star.CORRECTED_HALF2: "corrected/tomo_001_corrected_half2.mrc"}])
    table.write(root / "tomograms.star")
    model = root / "isonet_maps"
    model.mkdir()
    # the entries trainer.run_epoch records, in the files trainer.save writes
    history = [{"epoch": e, "loss": 1.0 / e, "n2n_loss": 0.6 / e, "mw_loss": 0.4 / e,
                "learning_rate": 3e-4, "steps": 5, "seconds": 30.0} for e in range(1, 5)]
    (model / output_names.HISTORY_FILE).write_text(json.dumps(history))
    (model / output_names.CONFIG_FILE).write_text(json.dumps(
        {"config": {"method": "isonet2-n2n", "arch": "unet-small", "cube_size": 32, "mw_weight": 20.0},
         "batch_size": 2, "tomograms": {}, "normalization": {}, "isonet2core_version": "0",
         "command_line": []}))
    for epoch in (2, 4):
        mrcio.write_mrc(model / output_names.PREVIEW_DIR / f"tomo_001_epoch{epoch:03d}.mrc",
                        maps["full/tomo_001.mrc"] * (1 - epoch / 5) + gt * epoch / 5, PIXEL)
    return root



def _table_rows(page: str):
    return [re.findall(r"<td>(.*?)</td>", row) for row in re.findall(r"<tr>(.*?)</tr>", page)]


def test_cli_report_writes_pages_figures_and_metrics(run_folder, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)       # relative STAR paths resolve beside the STAR file
    out = tmp_path / "report"
    rc = main(["report", str(run_folder / "tomograms.star"), "--output_dir", str(out),
               "--model_dir", str(run_folder / "isonet_maps"),
               "--ground_truth", str(run_folder / "ground_truth")])
    assert rc == 0
    page = (out / "report.html").read_text()
    md = (out / "report.md").read_text()
    sources = re.findall(r'<img src="([^"]+)"', page)
    assert sources == re.findall(r"!\[[^\]]*\]\(([^)]+)\)", md)
    assert set(sources) == {"tomo_001_orthoslices.png", "tomo_001_fourier.png",
                            "tomo_001_fsc_even_odd.png", "tomo_001_fsc_ground_truth.png",
                            "training_loss.png", "preview_tomo_001_orthoslices.png",
                            "preview_tomo_001_fourier.png"}
    for name in sources:
        assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert {p.name for p in out.iterdir()} == set(sources) | {"report.html", "report.md"}

    # the numbers table holds what isonet2core.imaging.metrics computes for these maps
    def read(name):
        return mrcio.read_mrc(run_folder / name)[0]
    gt = read("ground_truth/tomo_001.mrc")
    rows = {r[1]: r for r in _table_rows(page) if len(r) == 9 and r[0] == "tomo_001"}
    assert set(rows) == {"raw", "corrected"}
    for label, full, halves in (
            ("raw", "full/tomo_001.mrc", ("even/tomo_001.mrc", "odd/tomo_001.mrc")),
            ("corrected", "corrected/tomo_001_corrected.mrc",
             ("corrected/tomo_001_corrected_half1.mrc", "corrected/tomo_001_corrected_half2.mrc"))):
        vol = read(full)
        f, c = metrics.fsc(read(halves[0]), read(halves[1]))
        res_eo = metrics.fsc_resolution(f, c, PIXEL, threshold=0.143)
        f, c = metrics.fsc(vol, gt)
        res_gt = metrics.fsc_resolution(f, c, PIXEL, threshold=0.143)
        wf, wc = metrics.wedge_fsc(vol, gt, *TILT)
        res_w = metrics.fsc_resolution(wf, wc, PIXEL, threshold=0.143)
        assert all(np.isfinite([res_eo, res_gt])) and res_gt > 2 * PIXEL   # curves that cross
        expected = [f"{res_eo:.1f}", f"{100 * metrics.wedge_power_fraction(vol, *TILT):.1f}",
                    f"{metrics.pearson(vol, gt):.3f}", f"{metrics.psnr(vol, gt):.2f}", f"{res_gt:.1f}",
                    figures.resolution_label(res_w, wc), f"{metrics.mean_fsc(wf, wc):.3f}"]
        assert rows[label][2:] == expected
    # the restoration is better than the raw map in every number, the wedge most of all
    assert float(rows["raw"][3]) < 1.0 < float(rows["corrected"][3])     # wedge power (%)
    assert float(rows["corrected"][4]) > float(rows["raw"][4]) + 0.2     # Pearson
    assert float(rows["corrected"][8]) > float(rows["raw"][8]) + 0.3     # mean wedge FSC
    # the training section shows the last epoch of the history and the settings
    assert ["4", "0.25000", "0.15000", "0.10000", "0.000300", "2.0"] in _table_rows(page)
    assert ["mw_weight", "20.0"] in _table_rows(page)
    assert "| tomo_001 | corrected | " + " | ".join(rows["corrected"][2:]) + " |" in md


def test_cli_report_of_halves_only_without_outputs(run_folder, tmp_path):
    records = [{star.TOMO_NAME: "tomo_001", star.PIXEL_SIZE: PIXEL,
                star.TOMO_HALF1: str(run_folder / "even/tomo_001.mrc"),
                star.TOMO_HALF2: str(run_folder / "odd/tomo_001.mrc")}]
    star.TomogramsTable.from_records(records).write(tmp_path / "t.star")
    assert main(["report", str(tmp_path / "t.star"), "--output_dir", str(tmp_path / "r"),
                 "--format", "md"]) == 0
    md = (tmp_path / "r" / "report.md").read_text()
    assert "| tomo_001 | raw (mean of halves) |" in md
    assert "no corrected or denoised map" in md
    assert sorted(p.name for p in (tmp_path / "r").iterdir()) == [
        "report.md", "tomo_001_fourier.png", "tomo_001_fsc_even_odd.png", "tomo_001_orthoslices.png"]


def test_cli_report_checks_inputs_before_work(run_folder, tmp_path, capsys):
    star_file = str(run_folder / "tomograms.star")
    out = tmp_path / "r"
    empty = tmp_path / "empty"
    empty.mkdir()
    for extra, message in ((["--ground_truth", str(empty)], "no ground-truth map"),
                           (["--model_dir", str(empty)], "loss_history.json"),
                           (["--tomo_idx", "7"], "rlnIndex 7"),
                           (["--crop_size", "4"], "crop_size")):
        assert main(["report", star_file, "--output_dir", str(out), *extra]) == 2
        assert message in capsys.readouterr().err
        assert not out.exists()


def test_training_progress_line_from_the_history(tmp_path):
    from isonet2core.report import progress
    assert progress.read_history(tmp_path) == [] and progress.training_progress([], 10) is None
    history = [{"epoch": 1, "loss": 0.5, "seconds": 60.0},
               {"epoch": 2, "loss": 0.25, "seconds": 120.0}]
    (tmp_path / output_names.HISTORY_FILE).write_text(json.dumps(history))
    assert progress.read_history(tmp_path) == history
    # 8 epochs left at the mean 90 s: 720 s
    assert progress.seconds_left(history, 10) == 720.0
    assert progress.training_progress(history, 10) == "epoch 2/10, loss 0.25, about 12.0 min left"
    assert progress.training_progress(history, 2) == "epoch 2/2, loss 0.25"
    assert progress.seconds_left(history[:1], 2) == 60.0
    (tmp_path / output_names.HISTORY_FILE).write_text('{"epoch": 1}')
    with pytest.raises(ValueError, match="expected a list"):
        progress.read_history(tmp_path)
