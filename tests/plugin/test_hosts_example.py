"""The SLURM hosts.conf example (isonet2scipion/templates/hosts_slurm.conf) as Scipion reads it:
a queue system whose job script asks for the protocol's threads and GPUs and runs the command
(the long tests/cluster/test_slurm.py submits through it to a real SLURM)."""
from pathlib import Path

import isonet2scipion

EXAMPLE = Path(isonet2scipion.__file__).parent / "templates" / "hosts_slurm.conf"


def test_hosts_example_is_a_slurm_queue_with_threads_and_gpus():
    from pyworkflow.protocol.hosts import HostConfig
    host = HostConfig.load(str(EXAMPLE))["localhost"]
    queue = host.getQueueSystem()
    assert queue.getName() == "SLURM"
    assert host.getSubmitCommand() % {"JOB_SCRIPT": "x.job"} == "sbatch x.job"
    assert host.getCancelCommand() % {"JOB_ID": 7} == "scancel 7"
    assert host.getCheckCommand() % {"JOB_ID": 7} == "squeue -h -j 7"
    assert host.getJobDoneRegex() is None          # an empty squeue answer means finished
    script = host.getSubmitTemplate() % {
        "JOB_NAME": "12", "JOB_LOGS": "/p/logs/12", "JOB_QUEUE": "gpu", "JOB_THREADS": 4,
        "GPU_COUNT": 2, "JOB_HOURS": 72, "JOB_COMMAND": "python run.py", **host.getQueuesDefault()}
    lines = script.splitlines()
    assert lines[0] == "#!/bin/bash" and lines[-1].strip() == "python run.py"
    for expected in ("#SBATCH --cpus-per-task=4", "#SBATCH --gres=gpu:2", "#SBATCH --partition=gpu",
                     "#SBATCH --output=/p/logs/12.out", "#SBATCH --mem=32G"):
        assert expected in [ln.strip() for ln in lines], expected
    names = [p[0] for p in queue.getQueues()["debug"]]
    assert "QUEUE_FOR_JOBS" in names and "JOB_MEMORY" in names
