"""Device selection from --device and --gpuID (CUDA mocked: the test machine has no GPU)."""
import pytest
import torch

from isonet2core import device as dv


def test_parse_gpu_ids():
    assert dv.parse_gpu_ids(None) is None
    assert dv.parse_gpu_ids("None") is None
    assert dv.parse_gpu_ids("0,1") == [0, 1]
    assert dv.parse_gpu_ids("[2, 3]") == [2, 3]
    assert dv.parse_gpu_ids(1) == [1]
    for bad in ("a", "0,0", "-1"):
        with pytest.raises(ValueError, match="gpuID"):
            dv.parse_gpu_ids(bad)


def test_without_cuda(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert dv.select_devices("auto") == [torch.device("cpu")]
    assert dv.select_devices("cpu") == [torch.device("cpu")]
    with pytest.raises(ValueError, match="no CUDA GPU"):
        dv.select_devices("cuda")
    with pytest.raises(ValueError, match="--gpuID 0"):
        dv.select_devices("auto", "0")
    with pytest.raises(ValueError, match="contradicts"):
        dv.select_devices("cpu", "0")
    with pytest.raises(ValueError, match="device must be one of"):
        dv.select_devices("tpu")


def test_with_cuda_and_visible_devices(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    assert dv.select_devices("auto") == [torch.device("cuda:0"), torch.device("cuda:1")]
    assert dv.select_devices("cuda", "1") == [torch.device("cuda:1")]
    with pytest.raises(ValueError, match=r"GPU \[2\] not available: 2 visible"):
        dv.select_devices("auto", "0,2")
    # SLURM style, read as the IsoNet2 program reads it: positions in CUDA_VISIBLE_DEVICES
    # first (--gpuID 1 under 2,3 is the second listed GPU), else ids listed there
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "2,3")
    assert dv.select_devices("auto", "1") == [torch.device("cuda:1")]
    assert dv.select_devices("auto", "1,0") == [torch.device("cuda:1"), torch.device("cuda:0")]
    assert dv.select_devices("auto", "3,2") == [torch.device("cuda:1"), torch.device("cuda:0")]
    with pytest.raises(ValueError, match="CUDA_VISIBLE_DEVICES=2,3"):
        dv.select_devices("auto", "5")
    # a list of UUIDs (MIG): positions only
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "GPU-aa,GPU-bb")
    assert dv.select_devices("auto", "1") == [torch.device("cuda:1")]


def test_gpu_positions_follow_the_official_rule():
    assert dv.gpu_positions([0, 1], None, 2) == [0, 1]
    assert dv.gpu_positions([1], ["1", "0"], 2) == [1]          # a position wins over an id
    assert dv.gpu_positions([7], ["6", "7"], 2) == [1]
    with pytest.raises(ValueError, match="not available: 2 visible"):
        dv.gpu_positions([2], None, 2)


def _machine(monkeypatch, cores, bound=None):
    monkeypatch.setattr("os.cpu_count", lambda: cores)
    monkeypatch.setattr("os.sched_getaffinity", lambda pid: set(range(bound or cores)), raising=False)


def test_cpu_threads_never_exceed_the_cores(monkeypatch):
    from isonet2core.device import cpu_threads
    monkeypatch.delenv("SLURM_CPUS_PER_TASK", raising=False)
    _machine(monkeypatch, 2)
    assert cpu_threads(4) == 2          # a protocol's default of 4 on a 2-core machine
    assert cpu_threads(1) == 1
    assert cpu_threads(2, processes=2) == 1
    assert cpu_threads(1, processes=4) == 1
    _machine(monkeypatch, 16)
    assert cpu_threads(8) == 8 and cpu_threads(16, processes=3) == 5
    with pytest.raises(ValueError, match="at least 1"):
        cpu_threads(0)


def test_cpus_of_a_queue_job(monkeypatch):
    """A SLURM job owns --cpus-per-task CPUs (SLURM_CPUS_PER_TASK) even where nothing binds the
    process to them; a process bound to fewer cores (affinity) gets those."""
    from isonet2core.device import available_cpus, cpu_threads, describe
    _machine(monkeypatch, 16)
    monkeypatch.setenv("SLURM_CPUS_PER_TASK", "3")
    assert available_cpus() == 3 and cpu_threads(8) == 3 and cpu_threads(8, processes=2) == 1
    monkeypatch.setenv("SLURM_CPUS_PER_TASK", "64")          # more than the node: the cores
    assert available_cpus() == 16
    monkeypatch.setenv("SLURM_CPUS_PER_TASK", "")
    _machine(monkeypatch, 16, bound=4)
    assert available_cpus() == 4 and cpu_threads(8) == 4
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "2,3")
    assert describe([torch.device("cpu")]) == "cpu (CUDA_VISIBLE_DEVICES=2,3; 4 CPUs)"
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES")
    assert "CUDA_VISIBLE_DEVICES=unset" in describe([torch.device("cpu")])


def test_autocast_dtype_rule(monkeypatch):
    """One rule for training and predict: CUDA bf16 (training) / fp16 (inference) by default;
    a CPU with native bfloat16 runs bfloat16 by default except training at cubes below 48, and
    wherever asked; other CPUs float32."""
    cpu, gpu = torch.device("cpu"), torch.device("cuda", 0)
    assert dv.CPU_BF16_MIN_CUBE == 48
    monkeypatch.setattr(dv, "cpu_has_native_bf16", lambda: False)
    for dtype in ("auto", "bfloat16", "float16"):
        assert dv.autocast_dtype(cpu, True, dtype, training=True, cube_size=96) is None
    monkeypatch.setattr(dv, "cpu_has_native_bf16", lambda: True)
    assert dv.autocast_dtype(cpu, True, "auto", training=True, cube_size=48) is torch.bfloat16
    assert dv.autocast_dtype(cpu, True, "auto", training=True, cube_size=96) is torch.bfloat16
    assert dv.autocast_dtype(cpu, True, "auto", training=True, cube_size=32) is None
    assert dv.autocast_dtype(cpu, True, "auto", training=True) is None
    assert dv.autocast_dtype(cpu, True, "auto", training=False) is torch.bfloat16
    assert dv.autocast_dtype(cpu, False, "auto", training=False) is None
    assert dv.autocast_dtype(cpu, True, "float16", training=True, cube_size=96) is None
    assert dv.autocast_dtype(cpu, True, "bfloat16", training=True, cube_size=16) is torch.bfloat16
    assert dv.autocast_dtype(cpu, True, "bfloat16", training=False) is torch.bfloat16
    assert dv.autocast_dtype(cpu, False, "bfloat16", training=True) is None
    assert dv.autocast_dtype(cpu, False, "auto", training=True, cube_size=96) is None
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    assert dv.autocast_dtype(gpu, True, "auto", training=True) is torch.bfloat16
    assert dv.autocast_dtype(gpu, True, "auto", training=False) is torch.float16
    assert dv.autocast_dtype(gpu, True, "bfloat16", training=False) is torch.bfloat16
    assert dv.autocast_dtype(gpu, True, "float16", training=True) is torch.float16
    assert dv.autocast_dtype(gpu, False, "auto", training=True) is None
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: False)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda *a, **k: "Tesla V100")
    assert dv.autocast_dtype(gpu, True, "auto", training=True) is torch.float16
    with pytest.raises(ValueError, match="V100 does not support bfloat16"):
        dv.autocast_dtype(gpu, True, "bfloat16", training=True)
    with pytest.raises(ValueError, match="amp_dtype"):
        dv.autocast_dtype(cpu, True, "float8", training=True)


def test_the_cpu_bfloat16_answer_can_be_forced(monkeypatch):
    """ISONET2_CPU_BF16 on/off overrides what the CPU says (CI runs the training tests both
    ways on every CPU); auto or unset asks the CPU; anything else is refused, naming it."""
    monkeypatch.delenv(dv.CPU_BF16_ENV, raising=False)
    native = dv.cpu_has_native_bf16()
    cpu = torch.device("cpu")
    monkeypatch.setenv(dv.CPU_BF16_ENV, "on")
    assert dv.cpu_has_native_bf16() is True
    assert dv.autocast_dtype(cpu, True, "auto", training=False) is torch.bfloat16
    monkeypatch.setenv(dv.CPU_BF16_ENV, "OFF")
    assert dv.cpu_has_native_bf16() is False
    assert dv.autocast_dtype(cpu, True, "bfloat16", training=True, cube_size=96) is None
    monkeypatch.setenv(dv.CPU_BF16_ENV, "auto")
    assert dv.cpu_has_native_bf16() is native
    monkeypatch.setenv(dv.CPU_BF16_ENV, "yes")
    with pytest.raises(ValueError, match="ISONET2_CPU_BF16='yes': expected on, off or auto"):
        dv.cpu_has_native_bf16()


def test_out_of_memory_errors_are_recognised():
    from isonet2core.device import is_out_of_memory
    assert is_out_of_memory(torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2 GiB"))
    assert is_out_of_memory(RuntimeError("cuFFT error: CUFFT_ALLOC_FAILED"))
    assert is_out_of_memory(RuntimeError("CUDA error: out of memory"))
    assert not is_out_of_memory(RuntimeError("shape mismatch"))
    assert not is_out_of_memory(ValueError("out of memory"))
