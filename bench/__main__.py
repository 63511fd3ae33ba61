"""``python -m bench``: speed, memory and restoration quality of isonet2core in one run.

Sections (``--sections``, all by default), in this order:

* ``flops``: the machine's dense float32 matmul and 3D-convolution rates (:mod:`bench.flops`);
* ``train``: training throughput per arch x cube (:mod:`bench.train_speed`), each in a fresh
  process, cheapest first; from its FLOPs and the rate the cheaper ones achieved, a
  configuration's time is projected: its timed steps are cut (down to one) to fit ``--cap``
  seconds, and it is skipped, and recorded as such, when even one does not fit or the
  section's ``--train-budget`` is spent;
* ``predict``: prediction throughput and peak memory per tomogram size
  (:mod:`bench.predict_speed`), each in a fresh process, with the fitted time exponent;
* ``profile``: torch.profiler and cProfile of a training step and a predict run
  (:mod:`bench.profiling`);
* ``quality``: Pearson / PSNR / FSC / missing-wedge FSC against simulated ground truth for
  raw, deconv, denoise and refine at the ``--budgets`` (minutes) (:mod:`bench.quality`).

Writes ``OUT/results.json``, ``OUT/results.md`` and ``OUT/README-performance.md`` (the
README's Performance section). ``--quick`` runs tiny sizes, in this process rather than in
fresh worker processes (the smoke test). ``--device cuda`` measures float32 and mixed precision (``--mixed-precision both``).
Progress is logged to stderr.
"""
from __future__ import annotations

import argparse
import json
import logging
import shlex
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import List, Optional

import torch

from bench import common, flops, predict_speed, report, train_speed, worker

log = logging.getLogger("bench")

SECTIONS = ("flops", "train", "predict", "profile", "quality")
ARCHS = ("unet-small", "unet-medium", "unet-large")


def _shape(text: str) -> List[int]:
    parts = [int(p) for p in text.lower().replace(",", "x").split("x") if p]
    if len(parts) != 3 or min(parts) < 1:
        raise argparse.ArgumentTypeError(f"expected a shape ZxYxX, got {text!r}")
    return parts


def _list(conv):
    def parse(text: str):
        try:
            return [conv(p) for p in text.split(",") if p.strip()]
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a comma-separated list, got {text!r}") from None
    return parse


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true",
                   help="tiny sizes and budgets (seconds): checks that the benchmark runs")
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto",
                   help="device to measure (auto: cuda when available)")
    p.add_argument("--mixed-precision", choices=("auto", "on", "off", "both", "all"), default="auto",
                   help="precisions measured: off float32; on the default autocast dtype; both "
                        "float32 and it; all float32, bfloat16 and float16 (CUDA). auto: both on "
                        "CUDA, float32 on the CPU (bfloat16 too where the CPU has it natively)")
    p.add_argument("--compile", choices=("off", "on", "both"), default="off",
                   help="torch.compile the network (the train and predict sections)")
    p.add_argument("--budgets", type=_list(float), default=None,
                   help="training budgets in minutes for the quality section (default 2,5)")
    p.add_argument("--out", type=Path, default=Path("bench/results"), help="results folder")
    p.add_argument("--sections", type=_list(str), default=list(SECTIONS),
                   help=f"comma-separated subset of {','.join(SECTIONS)}")
    p.add_argument("--archs", type=_list(str), default=None, help="architectures of the train section")
    p.add_argument("--cubes", type=_list(int), default=None, help="cube sizes of the train section")
    p.add_argument("--train-batch", type=int, default=None,
                   help="cube pairs per step (default: 1 on the CPU, the trainer's auto rule on CUDA)")
    p.add_argument("--warmup", type=int, default=1, help="warm-up steps per configuration")
    p.add_argument("--reps", type=int, default=None, help="timed steps per configuration (default 2)")
    p.add_argument("--cap", type=float, default=None,
                   help="seconds allowed per training configuration (default 150)")
    p.add_argument("--train-budget", type=float, default=None,
                   help="seconds allowed for the whole train section (default 480)")
    p.add_argument("--predict-arch", default="unet-small", help="network of the predict section")
    p.add_argument("--predict-cube", type=int, default=None, help="tile size of the predict section")
    p.add_argument("--predict-sizes", type=_list(_shape), default=None,
                   help="tomogram sizes ZxYxX,ZxYxX,... of the predict section")
    p.add_argument("--predict-batch", type=int, default=2, help="tiles per forward pass")
    p.add_argument("--quality-arch", default="unet-small", help="network of the quality section")
    p.add_argument("--quality-cube", type=int, default=None, help="cube size of the quality section")
    p.add_argument("--quality-batch", type=int, default=2, help="cube pairs per step in the quality section")
    p.add_argument("--quality-shape", type=_shape, default=None, help="simulated tomogram ZxYxX")
    p.add_argument("--epoch-seconds", type=float, default=None,
                   help="target length of a quality-training epoch (checkpoint granularity)")
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    p.add_argument("--workdir", type=Path, default=None,
                   help="scratch folder (default: a temporary folder, removed at the end)")
    return p


def _settings(args) -> dict:
    q = args.quick
    return {
        "archs": args.archs or (["unet-small"] if q else list(ARCHS)),
        "cubes": args.cubes or ([16] if q else [48, 64, 96]),
        "reps": args.reps or (1 if q else 2),
        "cap": args.cap or (60.0 if q else 150.0),
        "train_budget": args.train_budget or (120.0 if q else 480.0),
        "predict_cube": args.predict_cube or (16 if q else 48),
        "predict_sizes": args.predict_sizes or ([[16, 32, 32], [32, 32, 64]] if q else
                                                [[32, 128, 128], [64, 256, 256], [128, 256, 256],
                                                 [256, 512, 512]]),
        "budgets": args.budgets or ([0.05, 0.1] if q else [2.0, 5.0]),
        "quality_cube": args.quality_cube or (16 if q else 48),
        "quality_shape": args.quality_shape or ([32, 48, 48] if q else [64, 128, 128]),
        "epoch_seconds": args.epoch_seconds or (1.0 if q else 30.0),
        "profile_cube": 16 if q else 48,
        "profile_shape": [16, 32, 32] if q else [32, 96, 96],
    }


def _precisions(device: torch.device, choice: str) -> List[str]:
    """The precisions measured: ``float32`` and autocast dtypes (``auto`` = the core's default
    rule, :func:`isonet2core.device.autocast_dtype`)."""
    from isonet2core.device import cpu_has_native_bf16

    if device.type != "cuda":
        if choice in ("off",) or not cpu_has_native_bf16():
            return ["float32"]
        return {"on": ["bfloat16"], "all": ["float32", "bfloat16"]}.get(choice, ["float32", "bfloat16"])
    return {"auto": ["float32", "auto"], "both": ["float32", "auto"], "on": ["auto"], "off": ["float32"],
            "all": ["float32", "bfloat16", "float16"]}[choice]


def _amp_kwargs(precision: str) -> dict:
    """Worker keywords of a precision of :func:`_precisions`."""
    return {"mixed_precision": precision != "float32",
            "amp_dtype": "auto" if precision == "float32" else precision}


def _compiles(choice: str) -> List[bool]:
    return {"off": [False], "on": [True], "both": [False, True]}[choice]


def run_flops(device: torch.device, quick: bool) -> dict:
    mm = flops.matmul_rate(device, n=512 if quick else 2048, reps=2 if quick else 5)
    cv = flops.conv_rate(device, size=16 if quick else 48, reps=1 if quick else 3)
    return {"matmul_gflops": mm / 1e9, "conv_gflops": cv / 1e9}


def run_train(device, st, args, precisions, workdir: Path, compiles=(False,)) -> dict:
    configs = []
    for arch in st["archs"]:
        for cube in st["cubes"]:
            batch = train_speed.plan_batch(device, arch, cube, args.train_batch)
            n_cubes = 2 * batch
            configs.append({"arch": arch, "cube": cube, "batch": batch,
                            "fwd_flops": flops.unet_flops(arch, cube, n_cubes, backward=False),
                            "fb_flops": flops.unet_flops(arch, cube, n_cubes, backward=True)})
    configs.sort(key=lambda c: c["fb_flops"])
    results, rates = [], []
    t_section = time.perf_counter()
    for mp, comp in [(p, c) for p in precisions for c in compiles]:
        for c in configs:
            rate = common.median(rates) if rates else None
            reps, proj = st["reps"], None
            while rate is not None:
                proj = train_speed.projected_seconds(c["fwd_flops"], c["fb_flops"], rate, args.warmup, reps)
                if proj <= st["cap"] or reps == 1:
                    break
                reps -= 1
            left = st["train_budget"] - (time.perf_counter() - t_section)
            entry = {"arch": c["arch"], "cube": c["cube"], "batch": c["batch"],
                     "mixed_precision": mp != "float32", "precision": mp, "compile_model": comp,
                     "fwd_flops": c["fwd_flops"], "fb_flops": c["fb_flops"],
                     "projected_s": None if proj is None else round(proj, 1)}
            reason = None
            if proj is not None and proj > st["cap"]:
                reason = (f"projected {proj:.0f} s > cap {st['cap']:.0f} s per configuration "
                          f"(1 warm-up + 1 timed step, at {rate / 1e9:.1f} GFLOP/s measured on cheaper ones)")
            elif proj is not None and proj > left:
                reason = (f"projected {proj:.0f} s > the {max(left, 0):.0f} s left of the train "
                          f"section's {st['train_budget']:.0f} s")
            if reason:
                entry.update(status="skipped", reason=reason)
                log.info("train %s/%d: %s", c["arch"], c["cube"], entry["reason"])
                results.append(entry)
                continue
            log.info("train %s cube %d batch %d %s%s (%d timed) ...", c["arch"], c["cube"], c["batch"],
                     mp, " compiled" if comp else "", reps)
            r = worker.run_worker("train", dict(
                arch=c["arch"], cube=c["cube"], batch=c["batch"], device=str(device), **_amp_kwargs(mp),
                compile_model=comp, warmup=args.warmup, reps=reps, cap_s=st["cap"], threads=args.threads,
                workdir=str(workdir / f"train_{c['arch']}_{c['cube']}_{mp}_{int(comp)}")),
                timeout_s=2 * st["cap"] + 90 + (300 if comp else 0), in_process=args.quick)
            entry.update(r)
            if r.get("status") == "ok":
                entry["achieved_gflops_bare"] = round(c["fb_flops"] / r["bare_forward_backward_s"] / 1e9, 2)
                entry["achieved_gflops_step"] = round(
                    (c["fb_flops"] + c["fwd_flops"]) / r["step_s"] / 1e9, 2)
                if mp == "float32" and not comp:
                    rates.append(c["fb_flops"] / r["bare_forward_backward_s"])
                log.info("  %.3f subtomos/s, step %.2f s, bare %.2f s (x%.2f), peak %.0f MiB",
                         r["subtomos_per_s"], r["step_s"], r["bare_forward_backward_s"],
                         r["overhead_ratio"], r["peak_memory_mib"] or -1)
            else:
                log.info("  %s: %s", r.get("status"), r.get("reason"))
            results.append(entry)
    return {"configs": results, "reps": st["reps"], "warmup": args.warmup, "cap_s": st["cap"],
            "section_budget_s": st["train_budget"], "section_wall_s": round(time.perf_counter() - t_section, 1)}


def run_predict(device, st, args, precisions, compiles=(False,)) -> dict:
    sizes = []
    arch, cube = args.predict_arch, st["predict_cube"]
    fwd_per_tile = flops.unet_flops(arch, cube, 1, backward=False)
    for mp, comp in [(p, c) for p in precisions for c in compiles]:
        for shape in st["predict_sizes"]:
            log.info("predict %s (%s cube %d) %s%s ...", "x".join(map(str, shape)), arch, cube, mp,
                     " compiled" if comp else "")
            r = worker.run_worker("predict", dict(shape=shape, arch=arch, cube=cube,
                                                  batch_size=args.predict_batch, device=str(device),
                                                  **_amp_kwargs(mp), compile_model=comp, threads=args.threads),
                                  timeout_s=900, in_process=args.quick)
            r.setdefault("shape", shape)
            r["mixed_precision"] = mp != "float32"
            r.setdefault("precision", mp)
            r["compile_model"] = comp
            if r.get("status") == "ok":
                r["achieved_gflops_bare"] = round(fwd_per_tile * r["n_tiles"] / r["bare_s_same_tiles"] / 1e9, 2)
                log.info("  %.0f voxels/s, predict/bare %.2f, peak %.0f MiB", r["voxels_per_s"],
                         r["efficiency"], r["peak_memory_mib"] or -1)
            else:
                log.info("  %s: %s", r.get("status"), r.get("reason"))
            sizes.append(r)
    ok = [r for r in sizes if r.get("status") == "ok" and not r["mixed_precision"] and not r["compile_model"]]
    out = {"arch": arch, "cube": cube, "batch_size": args.predict_batch, "sizes": sizes,
           "fwd_flops_per_tile": fwd_per_tile}
    out["time_exponent"] = predict_speed.fit_power_law([r["voxels"] for r in ok], [r["predict_s"] for r in ok])
    out["tile_exponent"] = predict_speed.fit_power_law([r["voxels"] for r in ok], [r["n_tiles"] for r in ok])
    mem = [r for r in ok if r.get("peak_memory_mib") is not None]
    fit = predict_speed.fit_linear([r["tomogram_mib"] for r in mem], [r["peak_memory_mib"] for r in mem])
    if fit:
        out["memory_intercept_mib"], out["memory_slope_per_tomogram_byte"] = fit
    if ok:
        texts = []
        if out["time_exponent"] is not None:
            texts.append(f"Fitted predict time ~ voxels^{out['time_exponent']:.2f} "
                         f"(tile count ~ voxels^{out['tile_exponent']:.2f}: the tiling's border margins "
                         f"make small volumes cost more per voxel).")
        if fit:
            texts.append(f"Peak memory ~ {fit[0]:.0f} MiB + {fit[1]:.2f} x tomogram size, MRC file to "
                         f"MRC file as `isonet2 predict` runs (fixed part: model, one batch of tiles and "
                         f"its activations; the part that grows: a few slabs of {cube} z planes of the "
                         f"input and of the output, so with the x-y area of the tomogram, not its depth).")
        texts.append(f"Network {arch}, tiles {cube}^3, padding_factor 1.5, batch {args.predict_batch} tiles; "
                     f"'bare' = the same model's forward over the same number of tiles "
                     f"(timed on up to 16 tiles).")
        out["summary"] = " ".join(texts)
    return out


def run_profile(device, st, args, workdir: Path) -> dict:
    from bench import profiling

    mp = device.type == "cuda"
    log.info("profiling a training step and a predict run ...")
    out = {"train_step": profiling.profile_training_step(
        arch="unet-small", cube=st["profile_cube"], batch=1, device=device, mixed_precision=mp,
        workdir=workdir / "profile")}
    out["predict"] = profiling.profile_prediction(
        shape=st["profile_shape"], arch="unet-small", cube=st["profile_cube"],
        batch_size=args.predict_batch, device=device, mixed_precision=mp)
    return out


def _step_estimates(results: dict, st, args, device) -> dict:
    """Expected seconds of a quality-training step per method, from the train section when it
    measured the same arch and cube, else from FLOPs at the measured (or assumed) rate."""
    arch, cube, batch = args.quality_arch, st["quality_cube"], args.quality_batch
    for r in results.get("train", {}).get("configs", []):
        if (r.get("status") == "ok" and r["arch"] == arch and r["cube"] == cube and not r["mixed_precision"]
                and not r.get("compile_model")):
            scale = batch / r["batch"]
            refine = r["step_s"] * scale
            every = r.get("step_with_fill_s", r["step_s"]) * scale
            denoise = (r["step_s"] - r["split_s"]["fill_forward"] - r["split_s"]["targets"]) * scale
            return {"refine": refine, "refine, fill_reuse 1": every, "denoise": max(denoise, 0.3 * refine),
                    "source": "train section"}
    rates = [r["achieved_gflops_bare"] * 1e9 for r in results.get("train", {}).get("configs", [])
             if r.get("status") == "ok" and not r["mixed_precision"] and not r.get("compile_model")]
    rate = common.median(rates) if rates else 0.2 * results.get("flops", {}).get("conv_gflops", 20.0) * 1e9
    fb = flops.unet_flops(arch, cube, 2 * batch, backward=True)
    fwd = flops.unet_flops(arch, cube, 2 * batch, backward=False)
    return {"refine": (fb + fwd / 2) / rate * 1.2, "refine, fill_reuse 1": (fb + fwd) / rate * 1.2,
            "denoise": fb / rate * 1.2, "source": "FLOPs / measured rate"}


def _fraction_of_matmul(results: dict) -> str:
    """The U-Net's achieved GFLOP/s (float32, not compiled) as a fraction of plain matmul."""
    achieved = [r["achieved_gflops_bare"] for r in results.get("train", {}).get("configs", [])
                if r.get("status") == "ok" and not r["mixed_precision"] and not r.get("compile_model")]
    achieved_p = [r["achieved_gflops_bare"] for r in results.get("predict", {}).get("sizes", [])
                  if r.get("status") == "ok" and not r["mixed_precision"] and not r.get("compile_model")]
    mm = results["flops"]["matmul_gflops"]
    texts = []
    if achieved:
        texts.append(f"training forward+backward {min(achieved):.1f}-{max(achieved):.1f} GFLOP/s "
                     f"= {min(achieved) / mm:.0%}-{max(achieved) / mm:.0%} of matmul")
    if achieved_p:
        texts.append(f"predict forward {min(achieved_p):.1f}-{max(achieved_p):.1f} GFLOP/s "
                     f"= {min(achieved_p) / mm:.0%}-{max(achieved_p) / mm:.0%} of matmul")
    return "; ".join(texts) or "-"


def _quality(results: dict, st: dict, args, device: torch.device, workdir: Path) -> dict:
    """The quality section: restoration at fixed training budgets, with its summary line."""
    from bench import quality

    est = _step_estimates(results, st, args, device)
    q = quality.run_quality(
        workdir=workdir / "quality", budgets_min=st["budgets"], device=device,
        arch=args.quality_arch, cube=st["quality_cube"], batch=args.quality_batch,
        shape=st["quality_shape"], step_s_estimate=est, epoch_target_s=st["epoch_seconds"],
        mixed_precision=device.type == "cuda", predict_batch=args.predict_batch, threads=args.threads)
    q["step_estimate"] = est
    q["summary"] = (
        f"Simulated tomogram {'x'.join(map(str, q['shape']))} (isonet2 simulate defaults: "
        f"{q['simulation'].get('pixel_size_a')} A/pixel, tilts {q['simulation'].get('tilt_min_deg')} to "
        f"{q['simulation'].get('tilt_max_deg')} step {q['simulation'].get('tilt_step_deg')}, defocus "
        f"{q['simulation'].get('defocus_a')} A, dose_snr {q['simulation'].get('dose_snr')}); "
        f"{q['arch']}, cube {q['cube']}, {q['batch']} pairs per step, trainer defaults otherwise "
        f"(refine: mw_weight 20, no CTF mode). Budget = the trainer's own epoch seconds; the "
        f"checkpoint of the last epoch finished within it is predicted (even+odd averaged) and "
        f"compared with the ground truth. Wedge FSC: FSC over the missing-wedge region "
        f"(metrics.wedge_fsc), mean over the shells up to 0.25 cycles/voxel and up to Nyquist.")
    return q


def main(argv: Optional[List[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S",
                        stream=sys.stderr)
    unknown = [s for s in args.sections if s not in SECTIONS]
    if unknown:
        raise SystemExit(f"unknown section(s) {unknown}; choose from {', '.join(SECTIONS)}")
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device("cuda" if args.device == "cuda" or (args.device == "auto" and torch.cuda.is_available())
                          else "cpu")
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda: no CUDA device is available")
    st = _settings(args)
    precisions = _precisions(device, args.mixed_precision)
    compiles = _compiles(args.compile)
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="isonet2-bench-"))
    workdir.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    results = {"command": "python -m bench " + " ".join(shlex.quote(a) for a in (argv if argv is not None else sys.argv[1:])),
               "machine": common.machine_info(device), "settings": st,
               "notes": []}
    if device.type == "cpu":
        results["notes"].append("CPU run: mixed precision is not used on the CPU (the trainer and predict "
                                "run float32 there); CUDA rows need `python -m bench --device cuda` on a GPU.")
    try:
        if "flops" in args.sections:
            results["flops"] = run_flops(device, args.quick)
            log.info("matmul %.1f GFLOP/s, conv %.1f GFLOP/s", results["flops"]["matmul_gflops"],
                     results["flops"]["conv_gflops"])
        if "train" in args.sections:
            results["train"] = run_train(device, st, args, precisions, workdir, compiles)
        if "predict" in args.sections:
            results["predict"] = run_predict(device, st, args, precisions, compiles)
        if "flops" in results:
            results["flops"]["unet_fraction_of_matmul_text"] = _fraction_of_matmul(results)
        if "profile" in args.sections:
            results["profile"] = run_profile(device, st, args, workdir)
        if "quality" in args.sections:
            results["quality"] = _quality(results, st, args, device, workdir)
    finally:
        results["load_average_at_end"] = common.load_average()
        results["total_wall_s"] = round(time.perf_counter() - t0, 1)
        results["notes"].append(f"Whole run: {results['total_wall_s']:.0f} s. The machine may be shared: "
                                f"load average at start {results['machine']['load_average_at_start']}, "
                                f"at end {results['load_average_at_end']}; timings are noisy accordingly.")
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "results.json").write_text(json.dumps(results, indent=1, default=str) + "\n")
        (args.out / "results.md").write_text(report.markdown(results))
        (args.out / "README-performance.md").write_text(report.performance_section(results))
        if args.workdir is None:
            shutil.rmtree(workdir, ignore_errors=True)
    log.info("wrote %s (%.0f s)", args.out / "results.md", results["total_wall_s"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
