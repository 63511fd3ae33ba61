"""A one-node SLURM cluster on localhost for the tests: munge, MariaDB + slurmdbd (so that
``sacct`` answers), slurmctld and slurmd, all from Debian's packages, configured in a private
folder and stopped afterwards.

No cgroups (``proctrack/linuxproc``, ``task/none``). The node offers two fake GPUs (gres
``gpu`` backed by two character devices that are copies of /dev/null), so SLURM sets ``CUDA_VISIBLE_DEVICES`` in jobs that ask
for ``--gres=gpu:N`` as it does on a real cluster. Commands find the cluster through
``SLURM_CONF`` (:attr:`SlurmCluster.env`).
"""
from __future__ import annotations

import os
import shutil
import socket
import stat
import subprocess
import time
from pathlib import Path
from typing import Dict, List, Optional

MUNGE_SOCKET = Path("/run/munge/munge.socket.2")
"""Where SLURM's clients and daemons look for munged (slurmctld's accounting connection
ignores AuthInfo), so this munged serves the default socket: one such cluster at a time."""
DAEMONS = ("munged", "mariadbd", "slurmdbd", "slurmctld", "slurmd")


def missing_programs() -> List[str]:
    """The programs this cluster needs that are not installed."""
    needed = ["munged", "munge", "mariadbd", "mariadb-install-db", "slurmdbd", "slurmctld", "slurmd",
              "sbatch", "squeue", "scancel", "sacct"]
    return [p for p in needed if shutil.which(p) is None
            and not Path("/usr/sbin", p).exists() and not Path("/usr/bin", p).exists()]


def _which(program: str) -> str:
    for folder in ("/usr/sbin", "/usr/bin"):
        if Path(folder, program).exists():
            return str(Path(folder, program))
    found = shutil.which(program)
    if found is None:
        raise FileNotFoundError(f"{program} is not installed (Debian: slurmctld slurmd "
                                "slurmdbd slurm-client munge mariadb-server)")
    return found


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class SlurmCluster:
    """Start with :meth:`start`, stop with :meth:`stop` (also a context manager)."""

    def __init__(self, folder: Path, cpus: Optional[int] = None, gpus: int = 2):
        self.folder = Path(folder)
        self.cpus = cpus or os.cpu_count() or 1
        self.gpus = gpus
        self.node = socket.gethostname()
        self.processes: Dict[str, subprocess.Popen] = {}
        self.conf = self.folder / "etc" / "slurm.conf"
        self.env = dict(os.environ, SLURM_CONF=str(self.conf))

    # ------------------------------------------------------------------ configuration
    def _write_configs(self) -> None:
        f = self.folder
        for d in ("etc", "state", "spool", "log", "db", "run", "gpus", "munge"):
            (f / d).mkdir(parents=True, exist_ok=True)
        for i in range(self.gpus):   # character devices as gres wants (copies of /dev/null)
            path = f / "gpus" / f"nvidia{i}"
            if not path.exists():
                os.mknod(path, 0o666 | stat.S_IFCHR, os.makedev(1, 3))
        self.db_port = _free_port()
        self.dbd_port = _free_port()
        self.ctld_port = _free_port()
        self.slurmd_port = _free_port()
        memory = max(1024, int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**20) - 1024)
        gres = f"Gres=gpu:{self.gpus}" if self.gpus else ""
        self.conf.write_text("\n".join([
            "ClusterName=isonet2test",
            f"SlurmctldHost={self.node}",
            f"SlurmctldPort={self.ctld_port}",
            f"SlurmdPort={self.slurmd_port}",
            "SlurmUser=root", "SlurmdUser=root",
            "AuthType=auth/munge",
            "ProctrackType=proctrack/linuxproc", "TaskPlugin=task/none",
            "SelectType=select/cons_tres", "SelectTypeParameters=CR_Core",
            "GresTypes=gpu",
            f"StateSaveLocation={f / 'state'}", f"SlurmdSpoolDir={f / 'spool'}",
            f"SlurmctldPidFile={f / 'run' / 'slurmctld.pid'}",
            f"SlurmdPidFile={f / 'run' / 'slurmd.pid'}",
            f"SlurmctldLogFile={f / 'log' / 'slurmctld.log'}",
            f"SlurmdLogFile={f / 'log' / 'slurmd.log'}",
            "AccountingStorageType=accounting_storage/slurmdbd", "AccountingStorageTRES=gres/gpu",
            "AccountingStorageHost=localhost", f"AccountingStoragePort={self.dbd_port}",
            "JobAcctGatherType=jobacct_gather/none", "JobCompType=jobcomp/none",
            "SlurmdParameters=config_overrides",   # the node may claim more CPUs than it has
            "MpiDefault=none", "ReturnToService=2", "SchedulerType=sched/backfill",
            "MinJobAge=300", "KillWait=5", "InactiveLimit=0",
            f"NodeName={self.node} NodeAddr=127.0.0.1 CPUs={self.cpus} RealMemory={memory} "
            f"{gres} State=UNKNOWN",
            f"PartitionName=debug Nodes={self.node} Default=YES MaxTime=INFINITE State=UP",
            ""]))
        if self.gpus:
            (f / "etc" / "gres.conf").write_text(
                f"NodeName={self.node} Name=gpu File={f / 'gpus'}/nvidia[0-{self.gpus - 1}]\n")
        dbd = f / "etc" / "slurmdbd.conf"
        dbd.write_text("\n".join([
            "AuthType=auth/munge",
            "DbdHost=localhost", f"DbdPort={self.dbd_port}", "SlurmUser=root",
            f"PidFile={f / 'run' / 'slurmdbd.pid'}", f"LogFile={f / 'log' / 'slurmdbd.log'}",
            "StorageType=accounting_storage/mysql", "StorageHost=127.0.0.1",
            f"StoragePort={self.db_port}", "StorageUser=root", "StorageLoc=slurm_acct_db", ""]))
        dbd.chmod(0o600)

    # ------------------------------------------------------------------ daemons
    def _spawn(self, name: str, argv: List[str]) -> None:
        log = open(self.folder / "log" / f"{name}.out", "ab")
        self.processes[name] = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT,
                                                env=self.env, start_new_session=True)

    def _wait(self, what: str, check, timeout: float = 60.0) -> None:
        deadline = time.time() + timeout
        while time.time() < deadline:
            for name, p in self.processes.items():
                if p.poll() is not None:
                    raise RuntimeError(f"{name} exited with {p.returncode} while waiting for "
                                       f"{what}: {self.log_tail(name)}")
            if check():
                return
            time.sleep(0.5)
        raise TimeoutError(f"{what} not ready after {timeout:.0f} s: {self.log_tail()}")

    def _ok(self, argv: List[str]) -> bool:
        return subprocess.run(argv, env=self.env, capture_output=True).returncode == 0

    def start(self) -> SlurmCluster:
        self._write_configs()
        f = self.folder
        key = Path("/etc/munge/munge.key")
        if not key.exists():
            subprocess.run([_which("mungekey"), "--create", f"--keyfile={f / 'munge' / 'munge.key'}"],
                           check=True, capture_output=True)
            key = f / "munge" / "munge.key"
        MUNGE_SOCKET.parent.mkdir(parents=True, exist_ok=True)
        if not self._ok([_which("munge"), "-n"]):   # else the machine's munged serves us
            self._spawn("munged", [_which("munged"), "--foreground", "--force",
                                   f"--socket={MUNGE_SOCKET}", f"--key-file={key}",
                                   f"--pid-file={f / 'munge' / 'munged.pid'}",
                                   f"--log-file={f / 'log' / 'munged.log'}",
                                   f"--seed-file={f / 'munge' / 'munged.seed'}"])
            self._wait("munge", lambda: self._ok([_which("munge"), "-n"]))
        subprocess.run([_which("mariadb-install-db"), f"--datadir={f / 'db'}", "--user=root",
                        "--auth-root-authentication-method=normal", "--skip-test-db"],
                       check=True, capture_output=True, env=self.env)
        self._spawn("mariadbd", [_which("mariadbd"), "--no-defaults", f"--datadir={f / 'db'}",
                                 "--user=root", "--bind-address=127.0.0.1",
                                 f"--port={self.db_port}", f"--socket={f / 'run' / 'mysql.sock'}",
                                 f"--pid-file={f / 'run' / 'mysql.pid'}",
                                 "--innodb-buffer-pool-size=64M", "--skip-log-bin"])
        self._wait("MariaDB", lambda: _port_open(self.db_port))
        self._spawn("slurmdbd", [_which("slurmdbd"), "-D"])   # slurmdbd.conf beside SLURM_CONF
        self._wait("slurmdbd", lambda: _port_open(self.dbd_port))
        self._spawn("slurmctld", [_which("slurmctld"), "-D", "-i", "-f", str(self.conf)])
        self._wait("slurmctld", lambda: self._ok([_which("scontrol"), "ping"]))
        self._spawn("slurmd", [_which("slurmd"), "-D", "-f", str(self.conf)])
        self._wait("the node", lambda: "idle" in self.node_state())
        return self

    def node_state(self) -> str:
        out = subprocess.run([_which("sinfo"), "-h", "-N", "-o", "%T"], env=self.env,
                             capture_output=True, text=True)
        return out.stdout.strip()

    def log_tail(self, name: Optional[str] = None, lines: int = 15) -> str:
        names = [name] if name else list(self.processes)
        out = []
        for n in names:
            for path in (self.folder / "log" / f"{n}.out", self.folder / "log" / f"{n}.log"):
                if path.exists():
                    out.append(f"[{path.name}] " + " | ".join(
                        path.read_text(errors="replace").splitlines()[-lines:]))
        return "\n".join(out)

    def stop(self) -> None:
        for name in reversed(DAEMONS):
            p = self.processes.pop(name, None)
            if p is None or p.poll() is not None:
                continue
            p.terminate()
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()

    def __enter__(self) -> SlurmCluster:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # ------------------------------------------------------------------ queries
    def sacct(self) -> List[Dict[str, str]]:
        """The finished and running jobs as sacct lists them (allocations, not steps)."""
        out = subprocess.run([_which("sacct"), "-X", "-n", "-P", "-a", "-S", "now-1days",
                              "-o", "JobID,JobName%60,State,AllocCPUS,AllocTRES%80,ReqTRES%80,ExitCode"],
                             env=self.env, capture_output=True, text=True, check=True)
        keys = ("JobID", "JobName", "State", "AllocCPUS", "AllocTRES", "ReqTRES", "ExitCode")
        return [dict(zip(keys, line.split("|"))) for line in out.stdout.splitlines() if line.strip()]


def _port_open(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0
