"""A Scipion project driven through SLURM (run by test_slurm.py in a process of its own, whose
environment names the cluster (SLURM_CONF) and a Scipion home whose hosts.conf is the plugin's
SLURM example). Prints one JSON line with what the test checks.

make mask (one job), refine (one job, cancelled with scancel mid-training, then Continue),
predict (queue for jobs: one job per tomogram) and, for comparison, make mask and predict
without the queue.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

QUEUE = "debug"
JOB_MEMORY = "2G"      # each job's --mem: what the one-node test cluster can give several jobs at once


def _project(name: str):
    from pyworkflow.project import Manager
    project = Manager().createProject(name)
    os.chdir(project.getPath())          # as Scipion runs protocols: from the project folder
    return project


def _queued(prot, threads: int, gpus: str, steps: bool = False) -> None:
    prot._useQueue.set(True)
    prot.setQueueParams([QUEUE, {"QUEUE_FOR_JOBS": "Y" if steps else "N", "JOB_MEMORY": JOB_MEMORY}])
    prot.numberOfThreads.set(threads)
    prot.useGpu.set(True)
    prot.gpuList.set(gpus)


def _wait(project, prot, timeout: float, until=None):
    deadline = time.time() + timeout
    while time.time() < deadline:
        project._updateProtocol(prot, checkPid=True)
        prot = project.getProtocol(prot.getObjId())
        if until is not None and until(prot):
            return prot
        if until is None and not prot.isActive():
            return prot
        time.sleep(2)
    raise TimeoutError(f"{prot.getRunName()} still {prot.getStatus()} after {timeout:.0f} s")


def _epochs_done(model_dir: Path) -> int:
    from isonet2core.report import progress
    history = progress.read_history(str(model_dir))
    return len(history or [])


def _job_logs(prot) -> str:
    """The protocol's logs and its jobs' outputs (a queued step's command writes to the job's
    .out/.err, a queued protocol's steps to run.stdout/run.stderr)."""
    logs = Path(prot.getPath()) / "logs"
    files = sorted(logs.glob("*.out")) + sorted(logs.glob("*.err")) + sorted(logs.glob("run.std*"))
    return "\n".join(p.read_text(errors="replace") for p in files)


def main(data: Path) -> dict:
    import tomo.protocols

    from isonet2scipion.constants import HALVES_NONE
    from isonet2scipion.protocols import (
        ProtIsoNet2MakeMask,
        ProtIsoNet2Predict,
        ProtIsoNet2Refine,
    )
    project = _project("slurm_workflow")
    out: dict = {}

    imp = project.newProtocol(tomo.protocols.ProtImportTomograms, filesPath=str(data / "full"),
                              filesPattern="*.mrc", samplingRate=10.0, acquisitionAngleMin=-60.0,
                              acquisitionAngleMax=60.0, step=3.0)
    project.launchProtocol(imp, wait=True)
    tomos = imp.Tomograms

    # make mask: the whole protocol as one job, and once without the queue
    masks = {}
    for label, queued in (("queued", True), ("local", False)):
        mask = project.newProtocol(ProtIsoNet2MakeMask, objLabel=f"mask {label}",
                                   inputTomograms=tomos, numberOfThreads=1, binThreads=1)
        if queued:
            mask._useQueue.set(True)
            mask.setQueueParams([QUEUE, {"QUEUE_FOR_JOBS": "N", "JOB_MEMORY": JOB_MEMORY}])
        project.launchProtocol(mask, wait=not queued)
        mask = _wait(project, mask, 300)
        out[f"mask_{label}_status"] = mask.getStatus()
        masks[label] = mask
        if queued:
            out["mask_job_ids"] = [str(j) for j in mask.getJobIds()] or None
    out["masks"] = {label: {m.getTsId(): os.path.abspath(m.getFileName()) for m in prot.tomoMasks}
                    for label, prot in masks.items() if prot.isFinished()}

    # refine: one job with two GPUs; scancel once an epoch is saved, then Continue
    refine = project.newProtocol(ProtIsoNet2Refine, halvesSource=HALVES_NONE, inputTomograms=tomos,
                                 inputMasks=masks["queued"].tomoMasks, arch=0, cube_size=16,
                                 epochs=14, batch_size=2, number_subtomos=6, save_interval=1,
                                 doPredict=False, binThreads=1)
    _queued(refine, threads=1, gpus="0 1")
    project.launchProtocol(refine)
    model_dir = Path(refine._getExtraPath("model"))
    refine = _wait(project, refine, 600, until=lambda p: _epochs_done(model_dir) >= 2 or not p.isActive())
    jobs = [str(j) for j in refine.getJobIds()]
    out["refine_first_jobs"] = jobs
    out["refine_epochs_at_cancel"] = _epochs_done(model_dir)
    subprocess.run(["scancel", *jobs], check=True)
    refine = _wait(project, refine, 120)
    out["refine_status_after_scancel"] = refine.getStatus()
    out["refine_epochs_after_scancel"] = _epochs_done(model_dir)
    project.launchProtocol(refine)                  # Continue (the default run mode)
    refine = _wait(project, refine, 900)
    out["refine_status"] = refine.getStatus()
    out["refine_epochs"] = _epochs_done(model_dir)
    out["refine_jobs"] = [str(j) for j in refine.getJobIds()]
    out["refine_logs"] = _job_logs(refine)

    # predict: queue for jobs, one job per tomogram, each with one GPU; and without the queue
    predicted = {}
    for label, queued in (("queued", True), ("local", False)):
        pred = project.newProtocol(ProtIsoNet2Predict, objLabel=f"predict {label}",
                                   halvesSource=HALVES_NONE, inputTomograms=tomos,
                                   inputModel=refine.model, padding_factor=1.0, binThreads=1,
                                   numberOfThreads=3)
        if queued:
            _queued(pred, threads=3, gpus="0", steps=True)
        else:
            pred.useGpu.set(False)
        project.launchProtocol(pred, wait=not queued)
        pred = _wait(project, pred, 600)
        out[f"predict_{label}_status"] = pred.getStatus()
        if pred.isFinished():
            predicted[label] = {t.getTsId(): os.path.abspath(t.getFileName()) for t in pred.tomograms}
        if queued:
            out["predict_logs"] = _job_logs(pred)
    out["predicted"] = predicted
    return out


if __name__ == "__main__":
    result = main(Path(sys.argv[1]))
    print("RESULT " + json.dumps(result))
