"""memory.py: the memory budget of the streamed steps (memory_gb, SLURM, the available memory) and
the shared memory_gb option of deconv and make-mask."""

import pytest

from isonet2core import memory
from isonet2core.config import DeconvConfig, MaskConfig, options_of

GIB, MIB = 2 ** 30, 2 ** 20


def test_memory_gb_wins_over_slurm_and_the_machine():
    budget = memory.memory_budget(1.5, environ={"SLURM_MEM_PER_NODE": "100"}, available=GIB)
    assert budget == memory.MemoryBudget(int(1.5 * GIB), "memory_gb 1.5")
    assert "1.5 GiB" in str(budget)
    for bad in (0, -1.0, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="memory_gb"):
            memory.memory_budget(bad)


def test_slurm_allocation_per_node_and_per_cpu():
    per_node = memory.memory_budget(environ={"SLURM_MEM_PER_NODE": "4000"}, available=64 * GIB)
    assert per_node.bytes == 4000 * MIB and "SLURM_MEM_PER_NODE=4000" in per_node.source
    per_cpu = memory.memory_budget(environ={"SLURM_MEM_PER_CPU": "2000", "SLURM_CPUS_ON_NODE": "4"},
                                   available=64 * GIB)
    assert per_cpu.bytes == 8000 * MIB and "SLURM_CPUS_ON_NODE=4" in per_cpu.source
    # --mem=0 (the whole node) sets no limit of the job's own: the per-CPU one or the machine's
    assert memory.memory_budget(environ={"SLURM_MEM_PER_NODE": "0", "SLURM_MEM_PER_CPU": "1G"},
                                available=64 * GIB).bytes == GIB
    assert memory.slurm_memory_bytes({"SLURM_MEM_PER_CPU": "512"}) == (512 * MIB, "SLURM_MEM_PER_CPU=512 x SLURM_CPUS_ON_NODE=1")
    assert memory.slurm_memory_bytes({"SLURM_MEM_PER_NODE": "2T"})[0] == 2048 * GIB
    assert memory.slurm_memory_bytes({}) is None


def test_machine_memory_when_less_than_slurm_or_alone():
    less = memory.memory_budget(environ={"SLURM_MEM_PER_NODE": "8000"}, available=2 * GIB)
    assert less.bytes == 2 * GIB and "MemAvailable" in less.source and "SLURM_MEM_PER_NODE" in less.source
    assert memory.memory_budget(environ={}, available=3 * GIB) == memory.MemoryBudget(3 * GIB, "MemAvailable of /proc/meminfo",
                                                                                        beyond_process=True)
    assert memory.memory_budget(environ={}, available=None) is None


def test_malformed_slurm_variables_are_named():
    with pytest.raises(ValueError, match="SLURM_MEM_PER_NODE='lots'"):
        memory.memory_budget(environ={"SLURM_MEM_PER_NODE": "lots"}, available=GIB)
    with pytest.raises(ValueError, match="SLURM_CPUS_ON_NODE"):
        memory.slurm_memory_bytes({"SLURM_MEM_PER_CPU": "100", "SLURM_CPUS_ON_NODE": "two"})


def test_the_process_and_what_is_left_for_the_arrays(monkeypatch):
    held = memory.resident_memory_bytes()
    assert held is None or held > 10 * MIB          # an interpreter with numpy, pytest, torch
    monkeypatch.setattr(memory, "resident_memory_bytes", lambda: 300 * MIB)
    work, text = memory.work_budget(1.0)
    assert work == GIB - 300 * MIB and "memory_gb 1" in text and "300.0 MiB" in text
    assert memory.work_budget(0.25)[0] < 0                  # less than the process holds already
    monkeypatch.setattr(memory, "available_memory_bytes", lambda: None)
    monkeypatch.delenv("SLURM_MEM_PER_NODE", raising=False)
    monkeypatch.delenv("SLURM_MEM_PER_CPU", raising=False)
    assert memory.work_budget(None) == (None, None)
    monkeypatch.setenv("SLURM_MEM_PER_NODE", "2048")
    assert memory.work_budget(None)[0] == 2 * GIB - 300 * MIB
    # MemAvailable is what the machine can give besides this process: nothing to subtract
    monkeypatch.delenv("SLURM_MEM_PER_NODE")
    monkeypatch.setattr(memory, "available_memory_bytes", lambda: 3 * GIB)
    work, text = memory.work_budget(None)
    assert work == 3 * GIB and "MemAvailable" in text and "less the" not in text


def test_memory_gb_is_one_option_of_deconv_and_make_mask():
    fields = [next(o for o in options_of(cls) if o.name == "memory_gb") for cls in (DeconvConfig, MaskConfig)]
    assert fields[0] == fields[1] and fields[0].default is None and fields[0].optional
    assert fields[0].spec.unit == "GiB"
    for cls in (DeconvConfig, MaskConfig):
        assert cls(memory_gb=2.0).validate().memory_gb == 2.0
        with pytest.raises(ValueError, match="memory_gb"):
            cls(memory_gb=0.0).validate()
