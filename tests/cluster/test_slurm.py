"""Scipion's queue on a real SLURM (issue 16): a project runs make mask -> refine -> predict
through sbatch, on a one-node cluster started here (slurm_cluster.py); sacct lists the jobs;
the outputs match a run without the queue; a training cancelled with scancel resumes on
Continue from its last checkpoint; the core uses the GPUs SLURM gave the job
(CUDA_VISIBLE_DEVICES, never overwritten) and the CPUs of --cpus-per-task.

Skipped, with the reason, where SLURM's Debian packages are not installed or the cluster
cannot start (the README's test command installs them best-effort, as root on Debian)."""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from slurm_cluster import SlurmCluster, missing_programs

pytestmark = pytest.mark.slow

HOSTS_EXAMPLE = Path(__file__).resolve().parents[2] / "isonet2scipion" / "templates" / "hosts_slurm.conf"


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    missing = missing_programs()
    if missing:
        pytest.skip(f"SLURM is not installed (missing {', '.join(missing)}; Debian: apt-get install "
                    "slurmctld slurmd slurmdbd slurm-client munge mariadb-server)")
    if os.geteuid() != 0:
        pytest.skip("the test cluster runs its daemons as root")
    c = SlurmCluster(tmp_path_factory.mktemp("slurm"), cpus=8, gpus=2)
    try:
        c.start()
    except (RuntimeError, TimeoutError, OSError, subprocess.CalledProcessError) as exc:
        c.stop()
        pytest.skip(f"the SLURM test cluster did not start: {exc}")
    yield c
    c.stop()


@pytest.fixture(scope="module")
def workflow(cluster, tmp_path_factory):
    """The project run through the queue (queued_workflow.py in its own process)."""
    root = tmp_path_factory.mktemp("scipion")
    data = root / "data"
    subprocess.run([sys.executable, "-m", "isonet2core", "simulate", "--output_dir", str(data),
                    "--n_tomograms", "2", "--shape", "32,64,64", "--pixel_size", "10"],
                   check=True, capture_output=True)
    home = root / "home"
    (home / "config").mkdir(parents=True)
    hosts = home / "config" / "hosts.conf"
    hosts.write_text(HOSTS_EXAMPLE.read_text())
    env = dict(cluster.env, SCIPION_HOME=str(home), SCIPION_USER_DATA=str(root / "userdata"),
               SCIPION_HOSTS=str(hosts))
    result = subprocess.run([sys.executable, str(Path(__file__).with_name("queued_workflow.py")),
                             str(data)], env=env, capture_output=True, text=True, timeout=2400,
                            cwd=str(root))
    lines = [ln for ln in result.stdout.splitlines() if ln.startswith("RESULT ")]
    assert result.returncode == 0 and lines, (result.stdout[-3000:], result.stderr[-5000:],
                                              cluster.log_tail())
    return json.loads(lines[-1][len("RESULT "):]), cluster.sacct()


def _read(path):
    from isonet2core.io import mrcio
    return mrcio.read_mrc(path)[0]


def test_make_mask_through_the_queue_matches_the_local_run(workflow):
    out, jobs = workflow
    assert out["mask_queued_status"] == out["mask_local_status"] == "finished"
    assert out["mask_job_ids"] and any(j["JobID"] == out["mask_job_ids"][0] and j["State"] == "COMPLETED"
                                       for j in jobs), jobs
    queued, local = out["masks"]["queued"], out["masks"]["local"]
    assert sorted(queued) == sorted(local) and len(queued) == 2
    for ts in queued:
        assert queued[ts] != local[ts]
        np.testing.assert_array_equal(_read(queued[ts]), _read(local[ts]))


def test_refine_is_one_job_with_the_gpus_slurm_gave_it_and_resumes_after_scancel(workflow):
    out, jobs = workflow
    assert 2 <= out["refine_epochs_at_cancel"] < 14, out
    assert out["refine_status_after_scancel"] == "failed"
    assert out["refine_epochs_after_scancel"] < 14
    assert out["refine_status"] == "finished" and out["refine_epochs"] == 14
    by_id = {j["JobID"]: j for j in jobs}
    first = by_id[out["refine_first_jobs"][0]]
    assert first["State"].startswith("CANCELLED"), first
    assert "gres/gpu=2" in first["AllocTRES"] and first["AllocCPUS"] == "1", first
    logs = out["refine_logs"]
    resumed = re.findall(r"resuming from \S+ after epoch (\d+)", logs)
    assert resumed and int(resumed[-1]) >= out["refine_epochs_at_cancel"] - 1, logs[-3000:]
    # the core saw SLURM's CUDA_VISIBLE_DEVICES and the job's one CPU
    assert re.search(r"devices: cpu \(CUDA_VISIBLE_DEVICES=0,1; 1 CPUs\)", logs), logs[-3000:]


def test_predict_runs_one_job_per_tomogram_and_matches_the_local_run(workflow):
    out, jobs = workflow
    assert out["predict_queued_status"] == out["predict_local_status"] == "finished"
    logs = out["predict_logs"]
    seen = re.findall(r"devices: cpu \(CUDA_VISIBLE_DEVICES=(\d+); (\d+) CPUs\)", logs)
    assert len(seen) == 2 and all(gpu in ("0", "1") and cpus == "2" for gpu, cpus in seen), logs[-3000:]
    step_jobs = [j for j in jobs if "gres/gpu=1" in j["AllocTRES"] and j["AllocCPUS"] == "3"]
    assert len(step_jobs) == 2 and all(j["State"] == "COMPLETED" for j in step_jobs), jobs
    # each job asked for the queue's JOB_MEMORY (requested: this test cluster does not count memory)
    assert all(re.search(r"mem=(2G|2048M)\b", j["ReqTRES"]) for j in step_jobs), jobs
    queued, local = out["predicted"]["queued"], out["predicted"]["local"]
    assert sorted(queued) == sorted(local) and len(queued) == 2
    for ts in queued:
        a, b = _read(queued[ts]), _read(local[ts])
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4 * float(np.abs(b).max()))
