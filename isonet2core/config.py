"""Typed settings for every step, as frozen dataclasses.

Field names carry units (``pixel_size_a``, ``tilt_min_deg`` ...). The command line keeps the
IsoNet2 spellings users know (``--pixel_size``, ``--tilt_min``, ``--CTF_mode``); the CLI modules
map those onto these fields, and ``validate()`` checks values at the public boundary, raising
``ValueError`` with the offending name and value.

Empty values are ``None``, never the string ``"None"``.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Literal, Optional, Tuple

Arch = Literal["unet-small", "unet-medium", "unet-large",
               "plain-unet-small", "plain-unet-medium", "plain-unet-large"]
ARCHS: Tuple[str, ...] = ("unet-small", "unet-medium", "unet-large",
                          "plain-unet-small", "plain-unet-medium", "plain-unet-large")

Method = Literal["isonet2-n2n", "isonet2", "n2n"]
"""``isonet2-n2n``: full method on even/odd halves; ``isonet2``: single map;
``n2n``: plain Noise2Noise (the ``denoise`` command)."""
METHODS: Tuple[str, ...] = ("isonet2-n2n", "isonet2", "n2n")

CTFMode = Optional[Literal["phase_only", "wiener", "network"]]
CTF_MODES: Tuple[Optional[str], ...] = (None, "phase_only", "wiener", "network")

LossFunc = Literal["L2", "L1", "Huber", "FSC", "FSC+L2"]
LOSS_FUNCS: Tuple[str, ...] = ("L2", "L1", "Huber", "FSC", "FSC+L2")
DEFAULT_LOSS_FUNC = {"isonet2-n2n": "FSC", "isonet2": "FSC", "n2n": "FSC+L2"}
"""The loss of a method when none is given (measured on realistic lamellae beside the IsoNet2
program, README Performance: refine FSC; denoise FSC+L2, since FSC alone loses Pearson there)."""

NoiseMode = Literal["white", "nofilter", "ramp", "hamming"]
NOISE_MODES: Tuple[str, ...] = ("white", "nofilter", "ramp", "hamming")
AmpDtype = Literal["auto", "bfloat16", "float16"]
AMP_DTYPES: Tuple[str, ...] = ("auto", "bfloat16", "float16")
"""Autocast dtype when ``mixed_precision`` (rule: :func:`isonet2core.device.autocast_dtype`)."""

ClipFirstPeakMode = Literal[0, 1, 2, 3]
"""0 none, 1 constant, 2 negative sine, 3 cosine (below the first CTF peak)."""


def _check(condition: bool, message: str) -> None:
    if not condition:
        raise ValueError(message)


def check_tilt_range(tilt_min_deg: float, tilt_max_deg: float) -> None:
    """Raise ``ValueError`` unless ``-90 <= tilt_min_deg < tilt_max_deg <= 90``."""
    _check(-90.0 <= tilt_min_deg <= 90.0 and -90.0 <= tilt_max_deg <= 90.0,
           f"tilt range ({tilt_min_deg}, {tilt_max_deg}) must lie within [-90, 90] degrees")
    _check(tilt_min_deg < tilt_max_deg,
           f"tilt_min ({tilt_min_deg}) must be smaller than tilt_max ({tilt_max_deg})")


@dataclass(frozen=True)
class Microscope:
    """Acquisition parameters of one tomogram."""
    pixel_size_a: float
    defocus_a: float = 10000.0          # at 0 degrees tilt, underfocus positive
    voltage_kv: float = 300.0
    cs_mm: float = 2.7
    amplitude_contrast: float = 0.1
    tilt_min_deg: float = -60.0
    tilt_max_deg: float = 60.0

    def validate(self) -> "Microscope":
        _check(self.pixel_size_a > 0, f"pixel size must be positive, got {self.pixel_size_a} A")
        _check(self.defocus_a >= 0, f"defocus must not be negative, got {self.defocus_a} A "
                                    "(underfocus is positive)")
        _check(self.voltage_kv > 0, f"voltage must be positive, got {self.voltage_kv} kV")
        _check(self.cs_mm >= 0, f"spherical aberration must not be negative, got {self.cs_mm} mm")
        _check(0.0 <= self.amplitude_contrast < 1.0,
               f"amplitude contrast must be in [0, 1), got {self.amplitude_contrast}")
        check_tilt_range(self.tilt_min_deg, self.tilt_max_deg)
        return self


@dataclass(frozen=True)
class PrepareStarConfig:
    full_dir: Optional[str] = None
    even_dir: Optional[str] = None
    odd_dir: Optional[str] = None
    mask_dir: Optional[str] = None
    coordinate_dir: Optional[str] = None
    star_name: str = "tomograms.star"
    pixel_size_a: Optional[float] = None      # None = "auto": read from the MRC header
    defocus_a: Tuple[float, ...] = (10000.0,)  # one value, or one per tomogram
    voltage_kv: float = 300.0
    cs_mm: float = 2.7
    amplitude_contrast: float = 0.1
    tilt_min_deg: float = -60.0
    tilt_max_deg: float = 60.0
    tilt_step_deg: Optional[float] = None      # recorded for the user; the wedge needs only min/max
    create_average: bool = False
    number_subtomos: Optional[int] = None      # None = "auto": 3000 / number of tomograms

    def validate(self) -> "PrepareStarConfig":
        _check(self.full_dir is not None or (self.even_dir is not None and self.odd_dir is not None),
               "give --full, or both --even and --odd")
        _check((self.even_dir is None) == (self.odd_dir is None),
               "--even and --odd must be given together")
        _check(self.pixel_size_a is None or self.pixel_size_a > 0,
               f"pixel_size must be positive or auto, got {self.pixel_size_a}")
        _check(len(self.defocus_a) >= 1, "defocus: give at least one value")
        for d in self.defocus_a:
            _check(d >= 0, f"defocus must not be negative, got {d} A (underfocus is positive)")
        _check(self.voltage_kv > 0, f"voltage must be positive, got {self.voltage_kv}")
        _check(self.cs_mm >= 0, f"cs must not be negative, got {self.cs_mm}")
        _check(0.0 <= self.amplitude_contrast < 1.0, f"ac must be in [0, 1), got {self.amplitude_contrast}")
        check_tilt_range(self.tilt_min_deg, self.tilt_max_deg)
        _check(self.tilt_step_deg is None or self.tilt_step_deg > 0,
               f"tilt_step must be positive, got {self.tilt_step_deg}")
        _check(self.number_subtomos is None or self.number_subtomos > 0,
               f"number_subtomos must be positive or auto, got {self.number_subtomos}")
        return self


@dataclass(frozen=True)
class DeconvConfig:
    snrfalloff: float = 1.0
    deconvstrength: float = 1.0
    highpassnyquist: float = 0.02
    chunk_size: Optional[int] = None   # cubic chunk edge in voxels; None = whole volume
    overlap_rate: float = 0.25
    ncpus: int = 4
    phaseflipped: bool = False

    def validate(self) -> "DeconvConfig":
        _check(self.snrfalloff >= 0, f"snrfalloff must not be negative, got {self.snrfalloff}")
        _check(0 <= self.highpassnyquist < 1, f"highpassnyquist must be in [0, 1), got {self.highpassnyquist}")
        _check(self.chunk_size is None or self.chunk_size >= 16,
               f"chunk_size must be at least 16 voxels or None, got {self.chunk_size}")
        _check(0 <= self.overlap_rate < 0.5, f"overlap_rate must be in [0, 0.5), got {self.overlap_rate}")
        _check(self.ncpus >= 1, f"ncpus must be at least 1, got {self.ncpus}")
        return self


@dataclass(frozen=True)
class MaskConfig:
    patch_size: int = 4
    density_percentage: float = 50.0
    std_percentage: float = 50.0
    z_crop: float = 0.2

    def validate(self) -> "MaskConfig":
        _check(self.patch_size >= 1, f"patch_size must be at least 1, got {self.patch_size}")
        _check(0 < self.density_percentage <= 100, f"density_percentage must be in (0, 100], got {self.density_percentage}")
        _check(0 < self.std_percentage <= 100, f"std_percentage must be in (0, 100], got {self.std_percentage}")
        _check(0 <= self.z_crop < 1, f"z_crop must be in [0, 1), got {self.z_crop}")
        return self


@dataclass(frozen=True)
class TrainConfig:
    """Settings of ``refine`` (methods isonet2-n2n / isonet2) and ``denoise`` (method n2n)."""
    method: Method = "isonet2-n2n"
    arch: Arch = "unet-medium"
    cube_size: int = 96
    epochs: int = 50
    batch_size: Optional[int] = None       # None = auto (per device count and memory)
    acc_batches: int = 1
    loss_func: Optional[LossFunc] = None   # None: DEFAULT_LOSS_FUNC[method]
    learning_rate: float = 3e-4
    learning_rate_min: float = 3e-4
    mixed_precision: bool = True           # autocast; on the CPU only with amp_dtype bfloat16
    amp_dtype: AmpDtype = "auto"           # CUDA auto: bfloat16 where supported, else float16
    compile_model: bool = False            # torch.compile the network (the program's --compile_model)
    ctf_mode: CTFMode = None
    is_ctf_flipped: bool = False
    do_phaseflip_input: bool = True
    bfactor: float = 0.0                   # A^2, exp(-B f^2/4) before and after clipping (official meaning)
    clip_first_peak_mode: ClipFirstPeakMode = 1
    snrfalloff: float = 1.0
    deconvstrength: float = 1.0
    highpassnyquist: float = 0.02
    mw_weight: float = 20.0
    noise_level: float = 0.0
    noise_mode: NoiseMode = "nofilter"      # the IsoNet2 program's default
    random_rot_weight: float = 0.2
    fill_reuse: int = 2                    # refine: steps that reuse one batch's fill predictions
    split_halves: bool = False
    number_subtomos: Optional[int] = None  # per tomogram per epoch; None = from the STAR
    save_interval: int = 10
    with_preview: bool = False
    prev_tomo_idx: Optional[Tuple[int, ...]] = (1,)   # rlnIndex values previewed (None: the first)
    seed: int = 0

    def __post_init__(self):
        if self.loss_func is None:
            object.__setattr__(self, "loss_func", DEFAULT_LOSS_FUNC.get(self.method, "FSC"))

    def validate(self) -> "TrainConfig":
        _check(self.method in METHODS, f"method must be one of {METHODS}, got {self.method!r}")
        _check(self.arch in ARCHS, f"arch must be one of {ARCHS}, got {self.arch!r}")
        _check(self.cube_size >= 16 and self.cube_size % 16 == 0,
               f"cube_size must be a positive multiple of 16, got {self.cube_size}")
        _check(self.epochs >= 1, f"epochs must be at least 1, got {self.epochs}")
        _check(self.batch_size is None or self.batch_size >= 1, f"batch_size must be at least 1, got {self.batch_size}")
        _check(self.acc_batches >= 1, f"acc_batches must be at least 1, got {self.acc_batches}")
        _check(self.loss_func in LOSS_FUNCS, f"loss_func must be one of {LOSS_FUNCS}, got {self.loss_func!r}")
        _check(self.learning_rate > 0, f"learning_rate must be positive, got {self.learning_rate}")
        _check(0 <= self.learning_rate_min <= self.learning_rate,
               f"learning_rate_min ({self.learning_rate_min}) must be in [0, learning_rate={self.learning_rate}]")
        _check(self.ctf_mode in CTF_MODES, f"CTF_mode must be one of None, phase_only, wiener, network; got {self.ctf_mode!r}")
        _check(self.clip_first_peak_mode in (0, 1, 2, 3), f"clip_first_peak_mode must be 0, 1, 2 or 3, got {self.clip_first_peak_mode}")
        _check(math.isfinite(self.bfactor), f"bfactor must be a finite number, got {self.bfactor}")
        _check(math.isfinite(self.mw_weight), f"mw_weight must be a finite number, got {self.mw_weight}")
        _check(self.noise_level >= 0, f"noise_level must not be negative, got {self.noise_level}")
        _check(self.prev_tomo_idx is None or (len(self.prev_tomo_idx) >= 1 and
                                              all(i >= 1 for i in self.prev_tomo_idx)),
               f"prev_tomo_idx must list rlnIndex values (1 or more), got {self.prev_tomo_idx}")
        _check(self.amp_dtype in AMP_DTYPES, f"amp_dtype must be one of {AMP_DTYPES}, got {self.amp_dtype!r}")
        _check(self.noise_mode in NOISE_MODES, f"noise_mode must be one of {NOISE_MODES}, got {self.noise_mode!r}")
        _check(0 <= self.random_rot_weight <= 1, f"random_rot_weight must be in [0, 1], got {self.random_rot_weight}")
        _check(self.fill_reuse >= 1, f"fill_reuse must be at least 1, got {self.fill_reuse}")
        _check(self.number_subtomos is None or self.number_subtomos >= 1,
               f"number_subtomos must be at least 1, got {self.number_subtomos}")
        _check(self.save_interval >= 1, f"save_interval must be at least 1, got {self.save_interval}")
        return self


@dataclass(frozen=True)
class PredictConfig:
    apply_mw_x1: bool = True
    is_ctf_flipped: bool = False
    padding_factor: float = 1.5      # tile spacing = cube / padding_factor (overlap between tiles)
    batch_size: int = 2              # tiles per forward pass (CPU: 2 is as fast as 4, 140 MiB less at 48^3)
    mixed_precision: bool = True
    amp_dtype: AmpDtype = "auto"     # CUDA auto: float16
    compile_model: bool = False      # torch.compile the network
    output_prefix: str = ""          # output files <prefix>_<name>_<suffix>.mrc ("": <name>_<suffix>.mrc)
    save_slices: bool = False        # orthoslices and Fourier slice of each output (PNG beside it)

    def validate(self) -> "PredictConfig":
        _check(1.0 <= self.padding_factor <= 4.0, f"padding_factor must be in [1, 4], got {self.padding_factor}")
        _check("/" not in self.output_prefix and "\\" not in self.output_prefix,
               f"output_prefix must be a file-name prefix, not a path: {self.output_prefix!r}")
        _check(self.batch_size >= 1, f"batch_size must be at least 1, got {self.batch_size}")
        _check(self.amp_dtype in AMP_DTYPES, f"amp_dtype must be one of {AMP_DTYPES}, got {self.amp_dtype!r}")
        return self


@dataclass(frozen=True)
class ReportConfig:
    """Settings of ``isonet2 report`` (figures and numbers of a run)."""
    n_average: int = 5                                # slices averaged in each orthoslice
    percentiles: Tuple[float, float] = (1.0, 99.0)    # grey-scale limits of orthoslices
    crop_size: Optional[int] = 256                    # central crop (voxels per axis) for Fourier
                                                      # slices and numbers; None = whole volume
    fsc_threshold: float = 0.143
    formats: Tuple[str, ...] = ("html", "md")         # pages written: html and/or md

    def validate(self) -> "ReportConfig":
        _check(self.n_average >= 1, f"n_average must be at least 1, got {self.n_average}")
        lo, hi = self.percentiles
        _check(0.0 <= lo < hi <= 100.0,
               f"percentiles must satisfy 0 <= low < high <= 100, got {self.percentiles}")
        _check(self.crop_size is None or self.crop_size >= 16,
               f"crop_size must be at least 16 voxels or None (whole volume), got {self.crop_size}")
        _check(0.0 < self.fsc_threshold < 1.0, f"fsc_threshold must be in (0, 1), got {self.fsc_threshold}")
        _check(len(self.formats) >= 1 and all(f in ("html", "md") for f in self.formats),
               f"formats must be html and/or md, got {self.formats}")
        return self


def to_dict(cfg) -> dict:
    """A JSON-ready dict of a config (tuples become lists)."""
    return dataclasses.asdict(cfg)


def from_dict(cls, data: dict):
    """Rebuild a config from ``to_dict`` output, ignoring unknown keys (older/newer versions)."""
    names = {f.name: f for f in dataclasses.fields(cls)}
    kwargs = {}
    for k, v in data.items():
        if k in names:
            kwargs[k] = tuple(v) if isinstance(v, list) else v
    return cls(**kwargs)
