"""Per-process peak memory of every Python process started with this folder first on
``PYTHONPATH`` and ``ISONET_PEAK_LOG=<file>`` set (bench/device/issue31.sh): at exit one JSON
line is appended to the file with the process's ``argv``, ``cwd``, ``pid``, start and end
(``time.time()``), and its peaks: on CUDA ``torch.cuda.max_memory_allocated`` and
``max_memory_reserved`` (MiB, the largest over the devices it used), always the peak resident
set ``VmHWM`` (MiB). The same hook for both programs, so that their peaks are measured alike;
neither program is changed.

The ``sitecustomize.py`` that Python would have imported without this folder (the next one on
``sys.path``, e.g. the official program's timing shim in ``official_src/``) is run first.
"""
import os
import sys


def _chain() -> None:
    here = os.path.dirname(os.path.abspath(__file__))
    for entry in sys.path:
        path = os.path.join(os.path.abspath(entry or "."), "sitecustomize.py")
        if os.path.dirname(path) != here and os.path.isfile(path):
            import importlib.util
            spec = importlib.util.spec_from_file_location("_chained_sitecustomize", path)
            module = importlib.util.module_from_spec(spec)
            sys.modules[spec.name] = module
            spec.loader.exec_module(module)
            return


def _peaks() -> dict:
    out = {}
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    out["peak_rss_mib"] = round(int(line.split()[1]) / 1024, 1)
    except OSError:
        pass
    torch = sys.modules.get("torch")
    try:
        if torch is not None and torch.cuda.is_initialized():
            n = torch.cuda.device_count()
            for key, read in (("cuda_max_allocated_mib", torch.cuda.max_memory_allocated),
                              ("cuda_max_reserved_mib", torch.cuda.max_memory_reserved)):
                out[key] = round(max(read(i) for i in range(n)) / 2 ** 20, 1)
    except Exception as exc:         # a CUDA runtime already shut down: the RSS row stays
        out["cuda_error"] = repr(exc)
    return out


def _install(log: str) -> None:
    import atexit
    import json
    import time

    start, pid = time.time(), os.getpid()

    def write() -> None:
        if os.getpid() != pid:       # a forked child (data loader workers) leaves no line
            return
        try:
            row = {"pid": pid, "argv": sys.argv, "cwd": os.getcwd(), "start": start, "end": time.time(),
                   **_peaks()}
            with open(log, "a") as fh:
                fh.write(json.dumps(row) + "\n")
        except Exception:            # never fail the measured process
            pass

    atexit.register(write)


_chain()
if os.environ.get("ISONET_PEAK_LOG"):
    _install(os.environ["ISONET_PEAK_LOG"])
