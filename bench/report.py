"""The results as Markdown tables, the targets check, and the README's Performance section.

``targets(results)`` compares the measured figures with the project's targets (each with the
measured value and met / not met / not measured); ``markdown(results)`` renders everything;
``performance_section(results)`` is the shorter text the README quotes.
"""
from __future__ import annotations

from typing import List, Optional

from bench.train_speed import STEP_SECTIONS


def _f(value, digits: int = 2, unit: str = "") -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}f}{unit}"
    return f"{value}{unit}"


def _table(header: List[str], rows: List[List[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def machine_line(results: dict) -> str:
    m = results["machine"]
    gpu = f", GPU {m['gpu']} ({m['gpu_memory_gib']} GiB, CUDA {m['cuda']})" if m.get("gpu") else ""
    return (f"{m['cpu_model']}, {m['logical_cpus']} logical CPUs ({m['torch_threads']} torch threads), "
            f"{m['memory_gib']} GiB RAM{gpu}; Python {m['python']}, torch {m['torch']}, "
            f"numpy {m['numpy']}; device {m['device']}; {m['date_utc']}; load average at start "
            f"{m['load_average_at_start']}, at end {results.get('load_average_at_end')}")


# --------------------------------------------------------------------------- targets
def _entry(target: str, measured: str, ok: Optional[bool], status: Optional[str] = None) -> dict:
    status = status or ("not measured" if ok is None else ("met" if ok else "NOT met"))
    return {"target": target, "measured": measured, "status": status}


def targets(results: dict) -> List[dict]:
    """One entry per target: ``target``, ``measured`` (text), ``status`` (met / not met /
    not measured)."""
    return _train_targets(results) + _predict_targets(results) + _quality_targets(results)


def _train_targets(results: dict) -> List[dict]:
    train = [r for r in results.get("train", {}).get("configs", []) if r.get("status") == "ok"]
    if not train:
        return [_entry("training step <= 1.3 x bare forward+backward", "-", None)]
    ratios = [r["overhead_ratio"] for r in train]
    reuse = sorted({int(r.get("fill_reuse", 1)) for r in train})
    return [_entry("training step <= 1.3 x bare forward+backward",
                   f"step/bare (fill_reuse {', '.join(map(str, reuse))}) "
                   + ", ".join(f"{r['arch'].replace('unet-', '')}/{r['cube']}: {r['overhead_ratio']:.2f}"
                               for r in train), all(x <= 1.3 for x in ratios))]


def _predict_targets(results: dict) -> List[dict]:
    pred = results.get("predict", {})
    sizes = [r for r in pred.get("sizes", []) if r.get("status") == "ok"]
    if not sizes:
        return [_entry(t, "-", None) for t in ("predict >= 0.6 x bare network throughput (same tiles)",
                                                "predict cost linear in volume (fitted exponent 0.9-1.1)",
                                                "peak memory <= 2 x (tomogram + model)")]
    out = [_entry("predict >= 0.6 x bare network throughput (same tiles)",
                  ", ".join(f"{'x'.join(map(str, r['shape']))}: {r['efficiency']:.2f}" for r in sizes),
                  all(r["efficiency"] >= 0.6 for r in sizes))]
    p = pred.get("time_exponent")
    out.append(_entry("predict cost linear in volume (fitted exponent 0.9-1.1)",
                      "-" if p is None else f"time ~ voxels^{p:.2f}", None if p is None else 0.9 <= p <= 1.1))
    slope = pred.get("memory_slope_per_tomogram_byte")
    measured = sorted((r for r in sizes if r.get("memory_ratio") is not None), key=lambda r: r["voxels"])
    failing = [r for r in measured if r["memory_ratio"] > 2.0]
    note, status = "", None
    if measured and failing and measured[-1]["memory_ratio"] <= 2.0:
        small = max(r["tomogram_mib"] for r in failing)
        first_ok = min(r["tomogram_mib"] for r in measured if r["tomogram_mib"] > small)
        note = (f" (at {small:.0f} MiB and below a fixed part, the model and one batch of tiles "
                f"with their activations, dominates)")
        status = f"met from {first_ok:.0f} MiB tomograms, NOT met up to {small:.0f} MiB"
    out.append(_entry("peak memory <= 2 x (tomogram + model)",
                      ", ".join(f"{'x'.join(map(str, r['shape']))}: {r['memory_ratio']:.1f}x" for r in measured)
                      + ("" if slope is None else f"; marginal {slope:.2f} bytes per tomogram byte") + note,
                      (not failing) if measured else None, status))
    return out


def _quality_targets(results: dict) -> List[dict]:
    q = results.get("quality", {})
    rows = [r for r in q.get("rows", []) if r.get("pearson") is not None and r.get("budget_min") is not None]
    if not rows:
        return [_entry("quality grows with budget", "-", None),
                _entry("refine beats denoise inside the missing wedge (mean wedge FSC <= 0.25/voxel)", "-", None)]
    out = []
    grows = {"pearson": True, "wedge_fsc_low": True}
    texts = []
    for label in ("denoise", "refine", "refine, fill_reuse 1"):
        mine = sorted((r for r in rows if r["output"] == label), key=lambda r: r["budget_min"])
        if len(mine) < 2:
            continue
        ablation = label not in ("denoise", "refine")
        texts.append(f"{label} Pearson " + " -> ".join(f"{r['pearson']:.3f}" for r in mine)
                     + ", wedge FSC " + " -> ".join(f"{r['wedge_fsc_low']:.3f}" for r in mine)
                     + (" (ablation of a default, not counted)" if ablation else ""))
        if not ablation:
            for metric in grows:
                grows[metric] = grows[metric] and all(b[metric] >= a[metric] for a, b in zip(mine, mine[1:]))
    status = None
    if texts and grows["pearson"] != grows["wedge_fsc_low"]:
        status = ("met in wedge FSC, NOT met in Pearson" if grows["wedge_fsc_low"]
                  else "met in Pearson, NOT met in wedge FSC")
    out.append(_entry("quality grows with budget", "; ".join(texts) or "-",
                      all(grows.values()) if texts else None, status))
    pairs, texts = [], []
    for budget in sorted({r["budget_min"] for r in rows}):
        d = [r for r in rows if r["output"] == "denoise" and r["budget_min"] == budget]
        f = [r for r in rows if r["output"] == "refine" and r["budget_min"] == budget]
        if d and f and d[0].get("wedge_fsc_low") is not None and f[0].get("wedge_fsc_low") is not None:
            pairs.append(f[0]["wedge_fsc_low"] > d[0]["wedge_fsc_low"])
            texts.append(f"{budget:g} min: refine {f[0]['wedge_fsc_low']:.3f} vs denoise "
                         f"{d[0]['wedge_fsc_low']:.3f}")
    out.append(_entry("refine beats denoise inside the missing wedge (mean wedge FSC <= 0.25/voxel)",
                      "; ".join(texts) or "-", all(pairs) if pairs else None))
    pairs, texts = [], []
    for budget in sorted({r["budget_min"] for r in rows}):
        f = [r for r in rows if r["output"] == "refine" and r["budget_min"] == budget]
        e = [r for r in rows if r["output"] == "refine, fill_reuse 1" and r["budget_min"] == budget]
        if f and e and None not in (f[0].get("wedge_fsc_low"), e[0].get("wedge_fsc_low")):
            pairs.append(f[0]["pearson"] >= e[0]["pearson"] - FILL_REUSE_TOLERANCE
                         and f[0]["wedge_fsc_low"] >= e[0]["wedge_fsc_low"] - FILL_REUSE_TOLERANCE)
            texts.append(f"{budget:g} min: Pearson {f[0]['pearson']:.3f} vs {e[0]['pearson']:.3f}, "
                         f"wedge FSC {f[0]['wedge_fsc_low']:.3f} vs {e[0]['wedge_fsc_low']:.3f}")
    out.append(_entry(f"fill reuse costs no quality at a fixed budget (refine vs refine with fill_reuse 1, "
                      f"within {FILL_REUSE_TOLERANCE})", "; ".join(texts) or "-", all(pairs) if pairs else None))
    return out


FILL_REUSE_TOLERANCE = 0.01
"""Largest loss of Pearson or wedge FSC (absolute) that still counts as no quality cost."""


# --------------------------------------------------------------------------- tables
def precision_label(r: dict) -> str:
    """``float32`` / ``bfloat16`` / ``float16`` (older results: amp / fp32), ``+ compile``."""
    text = r.get("precision") or ("amp" if r.get("mixed_precision") else "fp32")
    return text + (" + compile" if r.get("compile_model") else "")


def train_table(results: dict) -> str:
    rows = []
    for r in results.get("train", {}).get("configs", []):
        name = [r["arch"], str(r["cube"]), str(r.get("batch", "-")),
                precision_label(r), str(r.get("fill_reuse", "-"))]
        if r.get("status") != "ok":
            rows.append(name + [f"skipped: {r.get('reason', r.get('status'))}"] + [""] * 14)
            continue
        s = r["split_s"]
        rows.append(name + [
            _f(r["subtomos_per_s"], 3), _f(r["step_s"], 2),
            *[_f(s[k], 2) for k in STEP_SECTIONS],
            _f(r["bare_forward_backward_s"], 2), _f(r["overhead_ratio"], 2),
            _f(r["step_with_fill_s"] / r["bare_forward_backward_s"], 2) if r.get("step_with_fill_s") else "-",
            _f(r.get("achieved_gflops_bare"), 1), _f(r["peak_memory_mib"], 0),
            _f(r.get("cpu_utilization"), 2)])
    header = ["arch", "cube", "batch (pairs)", "precision", "fill reuse", "subtomos/s", "step s",
              *[f"{k} s" for k in STEP_SECTIONS], "bare fwd+bwd s", "step/bare",
              "step/bare, fill every step", "GFLOP/s (bare)", "peak MiB", "CPU use"]
    return _table(header, rows)


def predict_table(results: dict) -> str:
    rows = []
    for r in results.get("predict", {}).get("sizes", []):
        shape = "x".join(map(str, r["shape"]))
        if r.get("status") != "ok":
            rows.append([shape, precision_label(r), f"skipped: {r.get('reason', r.get('status'))}"] + [""] * 9)
            continue
        rows.append([shape, precision_label(r), str(r["n_tiles"]), _f(r["predict_s"], 1), _f(r["voxels_per_s"] / 1e3, 1),
                     _f(r["bare_s_same_tiles"], 1), _f(r["efficiency"], 2), _f(r["peak_memory_mib"], 0),
                     _f(r["tomogram_mib"] + r["model_mib"], 0), _f(r["memory_ratio"], 1),
                     _f(r.get("achieved_gflops_bare"), 1), _f(r.get("cpu_utilization"), 2)])
    header = ["tomogram (z,y,x)", "precision", "tiles", "predict s", "kvoxel/s", "bare net s (same tiles)",
              "predict/bare", "peak MiB", "tomogram+model MiB", "peak/(tomo+model)", "GFLOP/s (bare)",
              "CPU use"]
    return _table(header, rows)


def quality_table(results: dict) -> str:
    rows = []
    for r in results.get("quality", {}).get("rows", []):
        rows.append([r["output"], _f(r.get("budget_min"), 2), _f(r.get("trained_s"), 0),
                     _f(r.get("epoch")), _f(r.get("subtomos_seen")),
                     _f(r.get("pearson"), 3), _f(r.get("psnr_db"), 2), _f(r.get("fsc_0143_a"), 1),
                     _f(r.get("wedge_fsc_low"), 3), _f(r.get("wedge_fsc_mean"), 3), r.get("note", "")])
    header = ["output", "budget min", "trained s", "epochs", "subtomos seen", "Pearson",
              "PSNR dB", "FSC 0.143 (A)", "wedge FSC <= 0.25/voxel", "wedge FSC to Nyquist", "note"]
    return _table(header, rows)


def profile_tables(results: dict) -> str:
    parts = []
    for key, title in (("train_step", "one training step"), ("predict", "one predict run")):
        p = results.get("profile", {}).get(key)
        if not p:
            continue
        parts.append(f"Top operators, {title} ({p['arch']}, cube {p['cube']}"
                     + (f", tomogram {'x'.join(map(str, p['shape']))}" if "shape" in p else "") + "):\n")
        parts.append(_table(["operator", "self ms", "calls", "%"],
                            [[o["op"], _f(o["self_ms"], 1), str(o["calls"]), _f(o["percent"], 1)]
                             for o in p["torch_ops"][:10]]))
        parts.append("\nTop Python functions (cProfile, own time):\n")
        parts.append(_table(["function", "own s", "calls", "%"],
                            [[f["function"], _f(f["tottime_s"], 3), str(f["calls"]), _f(f["percent"], 1)]
                             for f in p["python_functions"][:8]]))
        parts.append("")
    return "\n".join(parts)


def targets_table(results: dict) -> str:
    return _table(["target", "measured", "status"],
                  [[t["target"], t["measured"], t["status"]] for t in targets(results)])


def flops_text(results: dict) -> str:
    f = results.get("flops", {})
    if not f:
        return ""
    return (f"Machine dense rates measured in the same run: float32 matmul {f['matmul_gflops']:.1f} GFLOP/s, "
            f"3x3x3 conv (32 ch, 48^3) {f['conv_gflops']:.1f} GFLOP/s. U-Net FLOPs are counted with "
            f"torch.utils.flop_counter (convolutions only); 'GFLOP/s (bare)' columns are the U-Net's achieved "
            f"rates, {f.get('unet_fraction_of_matmul_text', '-')}.")


def _proposal_parts(results: dict) -> List[str]:
    """The train table measured with a proposed (uncommitted) change, when the results hold one."""
    prop = results.get("train_proposal")
    if not prop:
        return []
    return [f"With the proposed change ({prop['change']}; not committed):", "",
            train_table({"train": prop}), ""]


def markdown(results: dict) -> str:
    notes = results.get("notes", [])
    parts = [
        "# isonet2scipion benchmarks", "",
        f"Command: `{results['command']}`", "",
        f"Machine: {machine_line(results)}", "",
        *(f"- {n}" for n in notes), "",
        "## Targets", "", targets_table(results), "",
        "## Training throughput (refine, isonet2-n2n)", "",
        "A subtomogram is one even/odd cube pair (the network sees 2 cubes per pair). Step split: "
        "fill_forward = no-grad network predictions for the wedge filling; targets = FFTs, noise, "
        "rotations, re-wedging; forward/backward = the network with gradients; loss = masked Fourier "
        "loss; optimizer = AdamW; rest = cube loading (prefetched by the trainer) and bookkeeping. "
        "The trainer's default fill_reuse (see the fill reuse column) trains each batch of cubes in that many "
        "consecutive steps under new rotations and fill noise and predicts its fill once; the figures are "
        "means over whole cycles of fill_reuse steps, and 'fill every step' is the step that predicts "
        "(= fill_reuse 1) over the same bare time. CPU use = process CPU seconds / (wall seconds x threads): "
        "well below 1 means other work shared the cores during the measurement.", "",
        train_table(results), "",
        *_proposal_parts(results),
        "## Prediction throughput and memory", "",
        predict_table(results), "",
        results.get("predict", {}).get("summary", ""), "",
        "## FLOP/s", "", flops_text(results), "",
        "## Quality at fixed training budgets", "",
        results.get("quality", {}).get("summary", ""), "",
        quality_table(results), "",
        "## Profiles", "", profile_tables(results), "",
    ]
    return "\n".join(parts).rstrip() + "\n"


def performance_section(results: dict) -> str:
    """The README's Performance section (Markdown, second-level heading)."""
    parts = [
        "## Performance", "",
        f"Measured with `{results['command']}` on {machine_line(results)}.",
        "Full tables, profiles and raw JSON: `bench/results/results.md`, `bench/results/results.json`.",
        "Timings on a shared 2-core machine are noisy (see the load averages).", "",
        "### Training (refine, one even/odd pair per step unless stated)", "",
        train_table(results), "",
        "### Prediction", "", predict_table(results), "",
        results.get("predict", {}).get("summary", ""), "",
        "### Quality at fixed training budgets (simulated tomogram with ground truth)", "",
        results.get("quality", {}).get("summary", ""), "",
        quality_table(results), "",
        "### Targets", "", targets_table(results), "",
    ]
    return "\n".join(parts).rstrip() + "\n"
