"""Typed settings for every step, as frozen dataclasses.

Field names carry units (``pixel_size_a``, ``tilt_min_deg`` ...). These classes are the one
source of every option: a field made with :func:`option` carries its command-line spelling (the
IsoNet2 one users know: ``--pixel_size``, ``--tilt_min``, ``--CTF_mode``), its help and unit;
its type and default are the field's, its choices the ``Literal``'s. The CLI parsers
(:func:`isonet2core.cli.common.add_config_options`), the Scipion forms, the workflow template
(which states only what differs from these defaults) and ``docs/options.md`` follow from them.
``validate()`` checks values at the public boundary, raising ``ValueError`` with the offending
name and value.

Empty values are ``None``, never the string ``"None"``.
"""
from __future__ import annotations

import dataclasses
import math
import typing
from dataclasses import dataclass
from typing import Any, List, Literal, Optional, Tuple

from isonet2core.nets.registry import ARCHITECTURES, DEFAULT_ARCH

ARCHS: Tuple[str, ...] = ARCHITECTURES       # the network names, from the registry
if typing.TYPE_CHECKING:
    Arch = str
else:
    Arch = Literal[ARCHS]

Method = Literal["isonet2-n2n", "isonet2", "n2n"]
"""``isonet2-n2n``: full method on even/odd halves; ``isonet2``: single map;
``n2n``: plain Noise2Noise (the ``denoise`` command)."""
METHODS: Tuple[str, ...] = typing.get_args(Method)

CTFMode = Optional[Literal["phase_only", "wiener", "network"]]
CTF_MODES: Tuple[Optional[str], ...] = (None,) + typing.get_args(typing.get_args(CTFMode)[0])

LossFunc = Literal["L2", "L1", "Huber", "FSC", "FSC+L2"]
LOSS_FUNCS: Tuple[str, ...] = typing.get_args(LossFunc)


@dataclass(frozen=True)
class MethodTraits:
    """What a training method implies, asked wherever it matters (trainer, targets, predict,
    the commands, the Scipion protocols).

    ``halves``: trains on even/odd pairs (else one map per tomogram); ``fills_wedge``: the
    missing-wedge correction (refine), else plain Noise2Noise (denoise); ``output``: what predict
    writes, ``corrected`` or ``denoised`` (file suffix, output folder, STAR columns);
    ``default_loss``: the loss when none is given (measured on realistic lamellae beside the
    IsoNet2 program: refine FSC; denoise FSC+L2, since FSC alone loses Pearson there)."""
    name: str
    halves: bool
    fills_wedge: bool
    output: Literal["corrected", "denoised"]
    default_loss: str


METHOD_TRAITS = {
    "isonet2-n2n": MethodTraits("isonet2-n2n", halves=True, fills_wedge=True, output="corrected",
                                default_loss="FSC"),
    "isonet2": MethodTraits("isonet2", halves=False, fills_wedge=True, output="corrected", default_loss="FSC"),
    "n2n": MethodTraits("n2n", halves=True, fills_wedge=False, output="denoised", default_loss="FSC+L2"),
}
"""The one table of the methods (:data:`METHODS` in that order)."""
DENOISE_METHOD = "n2n"
"""The method of the ``denoise`` command."""
REFINE_METHODS: Tuple[str, ...] = tuple(name for name, t in METHOD_TRAITS.items() if t.fills_wedge)
"""The methods of the ``refine`` command."""


def method_traits(method: str) -> MethodTraits:
    """The traits of a training method.

    Parameters
    ----------
    method : str
        One of :data:`METHODS`.

    Returns
    -------
    MethodTraits
        Its row of :data:`METHOD_TRAITS`.

    Raises
    ------
    ValueError
        An unknown method.
    """
    if method not in METHOD_TRAITS:
        raise ValueError(f"unknown method {method!r}; expected one of {', '.join(METHODS)}")
    return METHOD_TRAITS[method]


def refine_method(halves: bool) -> str:
    """The method ``refine --method auto`` picks: the wedge-filling method that trains on halves
    when every tomogram has them, else the single-map one.

    Parameters
    ----------
    halves : bool
        Every tomogram has even/odd halves.

    Returns
    -------
    str
        A method name.
    """
    return next(t.name for t in METHOD_TRAITS.values() if t.fills_wedge and t.halves == halves)


DEFAULT_LOSS_FUNC = {name: t.default_loss for name, t in METHOD_TRAITS.items()}
"""The loss of a method when none is given (:attr:`MethodTraits.default_loss`)."""

NoiseMode = Literal["white", "nofilter", "ramp", "hamming"]
NOISE_MODES: Tuple[str, ...] = typing.get_args(NoiseMode)
RotationInterpolation = Literal["trilinear", "nearest"]
ROTATION_INTERPOLATIONS: Tuple[str, ...] = typing.get_args(RotationInterpolation)
"""How refine's arbitrary rotations resample a cube (:mod:`isonet2core.training.rotations`)."""
RotationAngle = Literal["haar", "uniform"]
ROTATION_ANGLES: Tuple[str, ...] = typing.get_args(RotationAngle)
"""How refine's arbitrary rotations are drawn (:func:`isonet2core.training.rotations.random_rotation_matrix`)."""
FillNoise = Literal["white", "shells"]
FILL_NOISES: Tuple[str, ...] = typing.get_args(FillNoise)
"""Spectrum of the noise put into the wedge filling (:func:`isonet2core.training.targets.fill_noise_std`)."""
AmpDtype = Literal["auto", "bfloat16", "float16"]
HalvesInput = Literal["auto", "average", "halves"]
HALVES_INPUTS: Tuple[str, ...] = typing.get_args(HalvesInput)
"""What predict's main map of an N2N model on even/odd halves is predicted from
(:mod:`isonet2core.steps.predict`)."""
StarLayout = Literal["isonet2", "relion5"]
"""How a tomograms STAR is written (:data:`isonet2core.io.star.LAYOUTS`)."""
AMP_DTYPES: Tuple[str, ...] = typing.get_args(AmpDtype)
"""Autocast dtype when ``mixed_precision`` (rule: :func:`isonet2core.device.autocast_dtype`)."""

ClipFirstPeakMode = Literal[0, 1, 2, 3]
"""0 none, 1 constant, 2 negative sine, 3 cosine (below the first CTF peak)."""


@dataclass(frozen=True)
class Option:
    """How a config field is offered to users (its type and default are the field's).

    ``flag``: the command-line spelling (IsoNet2's; the field name when None); ``aliases``:
    further spellings; ``unit``: shown in help and docs; ``indices``: the value is written as a
    selection of rlnIndex values (``1,3,5-7``)."""
    help: str
    flag: Optional[str] = None
    aliases: Tuple[str, ...] = ()
    unit: Optional[str] = None
    indices: bool = False


def option(default: Any, help: str, *, flag: Optional[str] = None, aliases: Tuple[str, ...] = (),
           unit: Optional[str] = None, indices: bool = False) -> Any:
    """A dataclass field that is also a user option (see :class:`Option`).

    Parameters
    ----------
    default : Any
        The field's default.
    help : str
        One line of help (CLI, forms, docs).
    flag : str, optional
        Command-line spelling when not the field name (e.g. ``CTF_mode``).
    aliases : tuple of str
        Further accepted spellings.
    unit : str, optional
        Unit shown beside the value (``A``, ``voxels``, ...).
    indices : bool
        The value is a list of rlnIndex values (``1,3`` or ``2-4``).

    Returns
    -------
    dataclasses.Field
        The field, its :class:`Option` in ``metadata["option"]``.
    """
    return dataclasses.field(default=default, metadata={
        "option": Option(help=help, flag=flag, aliases=aliases, unit=unit, indices=indices)})


@dataclass(frozen=True)
class OptionField:
    """One option of a config class, resolved: ``name`` (the field), ``flag`` (the command-line
    spelling), ``type`` (the resolved annotation), ``default``, ``choices`` (the ``Literal``'s
    values, ``None`` first when the field is Optional; None when free), ``optional``."""
    name: str
    flag: str
    type: Any
    default: Any
    choices: Optional[Tuple[Any, ...]]
    optional: bool
    spec: Option

    @property
    def base(self) -> Any:
        """The value type without Optional: ``int``, ``float``, ``bool``, ``str``, ``tuple``."""
        hint = _strip_optional(self.type)
        if typing.get_origin(hint) is Literal:
            return type(typing.get_args(hint)[0])
        origin = typing.get_origin(hint)
        return origin if origin is not None else hint

    @property
    def element(self) -> Any:
        """The element type of a tuple option (``Tuple[float, ...]`` -> ``float``), else None."""
        hint = _strip_optional(self.type)
        return typing.get_args(hint)[0] if typing.get_origin(hint) is tuple else None


def _strip_optional(hint: Any) -> Any:
    args = [a for a in typing.get_args(hint) if a is not type(None)]
    if typing.get_origin(hint) is typing.Union and len(args) == 1:
        return args[0]
    return hint


def options_of(cls) -> List[OptionField]:
    """The options of a config class.

    Parameters
    ----------
    cls : type
        A config dataclass.

    Returns
    -------
    list of OptionField
        Its fields made with :func:`option`, in field order, with the resolved type, default
        and choices.
    """
    hints = typing.get_type_hints(cls)
    out = []
    for f in dataclasses.fields(cls):
        spec = f.metadata.get("option")
        if spec is None:
            continue
        hint = hints[f.name]
        optional = type(None) in typing.get_args(hint)
        inner = _strip_optional(hint)
        choices: Optional[Tuple[Any, ...]] = None
        if typing.get_origin(inner) is Literal:
            choices = ((None,) if optional else ()) + typing.get_args(inner)
        out.append(OptionField(f.name, spec.flag or f.name, hint, f.default, choices, optional, spec))
    return out


def flips_input(ctf_mode: Optional[str], do_phaseflip_input: bool, is_ctf_flipped: bool) -> bool:
    """The one phase-flip rule (training cubes, previews, predict, the Scipion forms): whether the
    network's input maps are phase flipped by us. ``phase_only`` always flips; ``network`` and
    ``wiener`` flip when ``do_phaseflip_input``; no CTF mode never flips; maps that are already
    flipped are never flipped again.

    Parameters
    ----------
    ctf_mode : str or None
        One of :data:`CTF_MODES`.
    do_phaseflip_input : bool
        The option of the same name.
    is_ctf_flipped : bool
        The maps at hand are already phase flipped.

    Returns
    -------
    bool
        True when the inputs get flipped.
    """
    if is_ctf_flipped or ctf_mode is None:
        return False
    return ctf_mode == "phase_only" or bool(do_phaseflip_input)


def _check(condition: bool, message: str) -> None:
    if not condition:
        raise ValueError(message)


def check_tilt_range(tilt_min_deg: float, tilt_max_deg: float) -> None:
    """Check a tilt range.

    Parameters
    ----------
    tilt_min_deg, tilt_max_deg : float
        Degrees.

    Raises
    ------
    ValueError
        Unless ``-90 <= tilt_min_deg < tilt_max_deg <= 90``.
    """
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

    def validate(self) -> Microscope:
        """Check the values.

        Returns
        -------
        Microscope
            ``self``, when every value is valid.

        Raises
        ------
        ValueError
            Naming the first invalid value.
        """
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
    """Settings of ``prepare-star``: which tomograms, and their acquisition parameters."""
    full_dir: Optional[str] = option(None, "folder of full tomograms (.mrc/.rec), when there are no "
                                     "even/odd halves", flag="full")
    even_dir: Optional[str] = option(None, "folder of even-half tomograms; paired with --odd by file "
                                     "name (identical names or names differing by EVN/ODD, even/odd, "
                                     "half1/half2)", flag="even")
    odd_dir: Optional[str] = option(None, "folder of odd-half tomograms (see --even)", flag="odd")
    mask_dir: Optional[str] = option(None, "folder of masks matched to tomograms by stem (NAME.mrc or "
                                     "NAME_mask.mrc)", flag="mask_folder")
    coordinate_dir: Optional[str] = option(None, "folder of subtomogram coordinates matched by stem "
                                           "(NAME.coords/.star/.txt, x y z per line); sets rlnBoxFile "
                                           "and rlnNumberSubtomo", flag="coordinate_folder")
    star_name: str = option("tomograms.star", "STAR file to write")
    pixel_size_a: Optional[float] = option(None, "pixel size, or auto (None) to read it from the MRC "
                                           "headers", flag="pixel_size", unit="A")
    defocus_a: Tuple[float, ...] = option((10000.0,), "defocus at 0 degrees tilt (underfocus positive): "
                                          "one value, or one per tomogram in name order, e.g. "
                                          "'[30000,32000]'", flag="defocus", unit="A")
    voltage_kv: float = option(300.0, "acceleration voltage", flag="voltage", unit="kV")
    cs_mm: float = option(2.7, "spherical aberration", flag="cs", unit="mm")
    amplitude_contrast: float = option(0.1, "amplitude contrast (0 to 1)", flag="ac")
    tilt_min_deg: float = option(-60.0, "lowest tilt angle", flag="tilt_min", unit="deg")
    tilt_max_deg: float = option(60.0, "highest tilt angle", flag="tilt_max", unit="deg")
    tilt_step_deg: Optional[float] = option(None, "tilt step (recorded in rlnTiltStep; the missing wedge "
                                            "depends only on tilt_min and tilt_max)", flag="tilt_step",
                                            unit="deg")
    create_average: bool = option(False, "write full = (even + odd) / 2 into full_average/ beside the "
                                  "STAR file (only without --full)")
    number_subtomos: Optional[int] = option(None, "subtomograms per tomogram per epoch, or auto (None): "
                                            "3000 / number of tomograms")
    star_layout: StarLayout = option("isonet2", "isonet2: a STAR the IsoNet2 program runs as it is "
                                     "(rlnTomoName the full map's path or None, None for empty "
                                     "cells, RELION-5's columns carried too); relion5: rlnTomoName "
                                     "the tomogram's name, as RELION-5 writes it. deconv, make-mask and "
                                     "predict keep the layout they read")

    def validate(self) -> PrepareStarConfig:
        """Check the values.

        Returns
        -------
        PrepareStarConfig
            ``self``, when every value is valid.

        Raises
        ------
        ValueError
            Naming the first invalid value.
        """
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


def memory_option() -> Any:
    """The ``memory_gb`` option, one definition for every step that streams whole tomograms
    (``deconv``, ``make-mask`` and ``predict`` each declare ``memory_gb: Optional[float] = memory_option()``;
    checked by :func:`check_memory_gb`; resolved by :func:`isonet2core.memory.memory_budget`).

    Returns
    -------
    dataclasses.Field
        A new field (default None) with its :class:`Option`.
    """
    return option(None, "memory the step may use; it works on each tomogram in blocks that fit "
                  "and refuses, before any work, a tomogram whose smallest block does not; None: "
                  "the memory available, or SLURM's allocation (SLURM_MEM_PER_NODE, or "
                  "SLURM_MEM_PER_CPU x SLURM_CPUS_ON_NODE)", unit="GiB")


def check_memory_gb(memory_gb: Optional[float]) -> None:
    """Check a ``memory_gb`` value (:func:`memory_option`).

    Parameters
    ----------
    memory_gb : float or None
        GiB, or None (decided at run time).

    Raises
    ------
    ValueError
        Not None and not a positive finite number.
    """
    _check(memory_gb is None or (math.isfinite(memory_gb) and memory_gb > 0),
           f"memory_gb must be a positive number of GiB or None, got {memory_gb}")


@dataclass(frozen=True)
class DeconvConfig:
    """Settings of ``deconv`` (and of the Wiener targets of CTF_mode wiener)."""
    snrfalloff: float = option(1.0, "how fast the assumed SNR falls with frequency; larger values "
                               "filter high frequencies more")
    deconvstrength: float = option(1.0, "overall deconvolution strength: the SNR is scaled by "
                                   "10**deconvstrength")
    highpassnyquist: float = option(0.02, "fraction of Nyquist below which a smooth high-pass removes "
                                    "the lowest frequencies")
    chunk_size: Optional[int] = option(None, "deconvolve in cubic chunks of this edge, each filtered "
                                       "with margins of chunk_size x overlap_rate / 2 (IsoNet1's "
                                       "approximate chunked mode); None: the exact filter of the "
                                       "whole volume (streamed in blocks that fit memory_gb)",
                                       unit="voxels")
    overlap_rate: float = option(0.25, "overlap between chunks as a fraction of chunk_size")
    ncpus: int = option(4, "CPU threads for the FFTs")
    memory_gb: Optional[float] = memory_option()
    phaseflipped: bool = option(False, "the tomograms are already phase-flipped (the filter uses |CTF|)")

    def validate(self) -> DeconvConfig:
        """Check the values.

        Returns
        -------
        DeconvConfig
            ``self``, when every value is valid.

        Raises
        ------
        ValueError
            Naming the first invalid value.
        """
        _check(self.snrfalloff >= 0, f"snrfalloff must not be negative, got {self.snrfalloff}")
        _check(0 <= self.highpassnyquist < 1, f"highpassnyquist must be in [0, 1), got {self.highpassnyquist}")
        _check(self.chunk_size is None or self.chunk_size >= 16,
               f"chunk_size must be at least 16 voxels or None, got {self.chunk_size}")
        _check(0 <= self.overlap_rate < 0.5, f"overlap_rate must be in [0, 0.5), got {self.overlap_rate}")
        _check(self.ncpus >= 1, f"ncpus must be at least 1, got {self.ncpus}")
        check_memory_gb(self.memory_gb)
        return self


@dataclass(frozen=True)
class MaskConfig:
    """Settings of ``make-mask``."""
    patch_size: int = option(4, "half width of the local maximum / local std windows (the smoothing "
                             "sigma is patch_size / 2)", unit="binned voxels")
    density_percentage: float = option(50.0, "keep the voxels in this top percentage of local "
                                       "(inverted) density")
    std_percentage: float = option(50.0, "keep the voxels in this top percentage of local standard "
                                   "deviation")
    z_crop: float = option(0.2, "fraction of the thickness removed in total, half at the top and half "
                           "at the bottom")
    memory_gb: Optional[float] = memory_option()

    def validate(self) -> MaskConfig:
        """Check the values.

        Returns
        -------
        MaskConfig
            ``self``, when every value is valid.

        Raises
        ------
        ValueError
            Naming the first invalid value.
        """
        _check(self.patch_size >= 1, f"patch_size must be at least 1, got {self.patch_size}")
        _check(0 < self.density_percentage <= 100, f"density_percentage must be in (0, 100], got {self.density_percentage}")
        _check(0 < self.std_percentage <= 100, f"std_percentage must be in (0, 100], got {self.std_percentage}")
        _check(0 <= self.z_crop < 1, f"z_crop must be in [0, 1), got {self.z_crop}")
        check_memory_gb(self.memory_gb)
        return self


@dataclass(frozen=True)
class TrainConfig:
    """Settings of ``refine`` (methods isonet2-n2n / isonet2) and ``denoise`` (method n2n).
    ``REFINE_ONLY`` lists the options ``denoise`` does not offer."""
    method: Method = "isonet2-n2n"         # not an option: refine offers auto, denoise is n2n
    arch: Arch = option(DEFAULT_ARCH, "network size")
    cube_size: int = option(96, "edge of the training cubes, a multiple of 16", unit="voxels")
    epochs: int = option(50, "number of training epochs")
    batch_size: Optional[int] = option(None, "cubes per optimisation step over all GPUs; auto (None): "
                                       "CPU 2-4, CUDA from GPU memory (up to 16 per GPU)")
    acc_batches: int = option(1, "batches whose gradients are accumulated before each optimiser step")
    loss_func: Optional[LossFunc] = option(None, "loss: FSC (1 - mean shell Fourier correlation), "
                                           "FSC+L2 (their sum), L2, L1 or Huber; None: the method's "
                                           "default (DEFAULT_LOSS_FUNC: refine FSC, denoise FSC+L2)")
    learning_rate: float = option(3e-4, "learning rate of the first epoch (AdamW)")
    learning_rate_min: float = option(3e-4, "learning rate of the last epoch (cosine schedule in "
                                      "between)")
    ema_decay: Optional[float] = option(0.999, "predict with an exponential moving average of the "
                                        "weights (updated every optimiser step, with the warm-up "
                                        "min(d, (1+n)/(10+n))); None: the last weights")
    mixed_precision: bool = option(True, "autocast the network to 16-bit floats (CUDA; CPUs with "
                                   "native bfloat16)")
    amp_dtype: AmpDtype = option("auto", "dtype of mixed precision: auto (CUDA: bfloat16 where "
                                 "supported, else float16; CPUs with native bfloat16: bfloat16 for "
                                 "cubes of 48 and up, else float32), bfloat16 (also on CPUs with "
                                 "native bfloat16) or float16")
    compile_model: bool = option(False, "run the network through torch.compile (the first steps "
                                 "compile it; the IsoNet2 program's --compile_model)")
    ctf_mode: CTFMode = option(None, "CTF handling: None, phase_only (phase-flipped data), wiener "
                               "(Wiener-filtered targets) or network (the network outputs "
                               "CTF-corrected density)", flag="CTF_mode")
    is_ctf_flipped: bool = option(False, "the tomograms are already phase flipped", flag="isCTFflipped")
    do_phaseflip_input: bool = option(True, "phase flip the training cubes in wiener/network CTF modes "
                                      "(phase_only always does)")
    bfactor: float = option(0.0, "B-factor of the network-mode CTF: envelope exp(-B f^2 / 4) applied "
                            "before and after first-peak clipping, as the IsoNet2 program does; "
                            "200-300 for isolated particles, 0 or negative for cells", unit="A^2")
    clip_first_peak_mode: ClipFirstPeakMode = option(1, "CTF below its first peak: 0 unchanged, "
                                                     "1 constant, 2 negative sine, 3 cosine")
    snrfalloff: float = option(DeconvConfig.snrfalloff, "Wiener target (CTF_mode wiener): SNR fall-off with frequency")
    deconvstrength: float = option(DeconvConfig.deconvstrength, "Wiener target (CTF_mode wiener): strength, SNR scaled by "
                                   "10^deconvstrength")
    highpassnyquist: float = option(DeconvConfig.highpassnyquist, "Wiener target (CTF_mode wiener): high-pass cut-off as a "
                                    "fraction of Nyquist")
    mw_weight: float = option(20.0, "weight of the missing-wedge term of the masked loss (the paper "
                              "uses 20-200); 0 or negative (the IsoNet2 program's -1): a plain loss "
                              "over the whole cube, no masks")
    mw_loss_func: Optional[LossFunc] = option(None, "loss of the missing-wedge term (mw_weight > 0), of "
                                              "loss_func's choices; None: loss_func. FSC+L2 weighs the "
                                              "filling by its power: measured, a higher missing-wedge "
                                              "FSC on lamella-s1, a lower one on our simulator's "
                                              "lamellae, a lower Pearson on all three (README)")
    noise_level: float = option(0.0, "synthetic noise added to the single-map inputs, on the IsoNet2 "
                                "program's scale: std = this x each cube's 4-96 percentile range")
    noise_mode: NoiseMode = option("nofilter", "spectrum of the synthetic noise: back-projection noise "
                                   "of a tilt series, unweighted (nofilter, the IsoNet2 program's "
                                   "default), ramp- or Hamming-weighted, or white")
    random_rot_weight: float = option(0.2, "fraction of arbitrary (trilinear) rotations; the rest are "
                                      "the 20 90-degree rotations that move the missing wedge")
    random_rot_interp: RotationInterpolation = option("trilinear", "resampling of the arbitrary "
                                                       "rotations: trilinear, zeros outside the cube, or "
                                                       "nearest, the outside reflected in (the IsoNet2 "
                                                       "program's: no blur, no zero corners)")
    random_rot_angle: RotationAngle = option("haar", "distribution of the arbitrary rotations: haar, "
                                             "uniform over all rotations, or uniform, a random axis "
                                             "turned by an angle uniform in [0, 360) degrees (the "
                                             "IsoNet2 program's: more small turns)")
    fill_noise: FillNoise = option("white", "spectrum of the noise put back into the wedge filling "
                                   "(isonet2-n2n): white, at the halves' mean noise level (the paper), or "
                                   "shells, each Fourier shell at the halves' noise level of that shell")
    fill_reuse: int = option(2, "train each batch of cubes in this many consecutive steps (new "
                             "rotations and fill noise each time) and predict its missing-wedge "
                             "filling once; 1 predicts on every step (slower per step, see the "
                             "README's Performance section)")
    split_halves: bool = option(False, "train two independent networks, on the even and on the odd half")
    number_subtomos: Optional[int] = option(None, "cubes per tomogram per epoch; None: "
                                            "rlnNumberSubtomo of the STAR, else 3000 / number of "
                                            "tomograms")
    save_interval: int = option(10, "keep a model copy (and a preview) every this many epochs, and "
                                "after the last")
    with_preview: bool = option(False, "predict the prev_tomo_idx tomograms every save_interval "
                                "epochs into OUTPUT_DIR/preview")
    prev_tomo_idx: Optional[Tuple[int, ...]] = option((1,), "rlnIndex values of the tomograms "
                                                      "previewed, e.g. 1,3 or 2-4 (the first trained "
                                                      "one when none of them is)", indices=True)
    seed: int = option(0, "random seed (cube positions, rotations, noise, initial weights)")

    def __post_init__(self):
        if self.loss_func is None:
            object.__setattr__(self, "loss_func", DEFAULT_LOSS_FUNC.get(self.method, "FSC"))

    def validate(self) -> TrainConfig:
        """Check the values.

        Returns
        -------
        TrainConfig
            ``self``, when every value is valid.

        Raises
        ------
        ValueError
            Naming the first invalid value.
        """
        _check(self.method in METHODS, f"method must be one of {METHODS}, got {self.method!r}")
        _check(self.arch in ARCHS, f"arch must be one of {ARCHS}, got {self.arch!r}")
        _check(self.cube_size >= 16 and self.cube_size % 16 == 0,
               f"cube_size must be a positive multiple of 16, got {self.cube_size}")
        _check(self.epochs >= 1, f"epochs must be at least 1, got {self.epochs}")
        _check(self.batch_size is None or self.batch_size >= 1, f"batch_size must be at least 1, got {self.batch_size}")
        _check(self.acc_batches >= 1, f"acc_batches must be at least 1, got {self.acc_batches}")
        _check(self.loss_func in LOSS_FUNCS, f"loss_func must be one of {LOSS_FUNCS}, got {self.loss_func!r}")
        _check(self.mw_loss_func is None or self.mw_loss_func in LOSS_FUNCS,
               f"mw_loss_func must be one of {LOSS_FUNCS} or None, got {self.mw_loss_func!r}")
        _check(math.isfinite(self.learning_rate) and self.learning_rate > 0,
               f"learning_rate must be a positive finite number, got {self.learning_rate}")
        _check(self.seed >= 0, f"seed must be 0 or more, got {self.seed}")
        _check(0 <= self.learning_rate_min <= self.learning_rate,
               f"learning_rate_min ({self.learning_rate_min}) must be in [0, learning_rate={self.learning_rate}]")
        _check(self.ema_decay is None or 0 < self.ema_decay < 1,
               f"ema_decay must be in (0, 1) or None, got {self.ema_decay}")
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
        _check(self.fill_noise in FILL_NOISES, f"fill_noise must be one of {FILL_NOISES}, got {self.fill_noise!r}")
        _check(self.random_rot_interp in ROTATION_INTERPOLATIONS,
               f"random_rot_interp must be one of {ROTATION_INTERPOLATIONS}, got {self.random_rot_interp!r}")
        _check(self.random_rot_angle in ROTATION_ANGLES,
               f"random_rot_angle must be one of {ROTATION_ANGLES}, got {self.random_rot_angle!r}")
        _check(self.fill_reuse >= 1, f"fill_reuse must be at least 1, got {self.fill_reuse}")
        _check(not (self.split_halves and not method_traits(self.method).halves),
               f"split_halves needs even/odd halves (method "
               f"{' or '.join(t.name for t in METHOD_TRAITS.values() if t.halves)}), not method {self.method}")
        _check(self.number_subtomos is None or self.number_subtomos >= 1,
               f"number_subtomos must be at least 1, got {self.number_subtomos}")
        _check(self.save_interval >= 1, f"save_interval must be at least 1, got {self.save_interval}")
        return self


REFINE_ONLY: Tuple[str, ...] = ("mw_weight", "mw_loss_func", "noise_level", "noise_mode", "random_rot_weight",
                                 "random_rot_interp", "random_rot_angle", "fill_noise", "fill_reuse")
"""TrainConfig options of refine that denoise (plain Noise2Noise: no wedge filling, no synthetic
noise) does not offer."""


@dataclass(frozen=True)
class PredictConfig:
    """Settings of ``predict`` (and of ``--with_predict`` after training)."""
    apply_mw_x1: bool = option(True, "remove the missing-wedge region from each input tile, as the "
                               "network's training inputs were (refine models; denoise models never "
                               "re-wedge)")
    is_ctf_flipped: bool = option(False, "the tomograms are already phase flipped (never flip them "
                                  "again)", flag="isCTFflipped")
    padding_factor: float = option(1.5, "tile spacing = cube_size / padding_factor; larger values mean "
                                   "more overlap (1 = no overlap, 1.5 = a third of the cube, up to 4)")
    batch_size: int = option(2, "tiles per forward pass (lower it if the GPU runs out of memory; CPU: "
                             "2 is as fast as 4 and 140 MiB smaller at 48^3)")
    mixed_precision: bool = option(True, "autocast the network to 16-bit floats (CUDA; CPUs with "
                                   "native bfloat16)")
    amp_dtype: AmpDtype = option("auto", "dtype of mixed precision: auto (CUDA float16; CPUs with "
                                 "native bfloat16: bfloat16, else float32), bfloat16 (also on CPUs "
                                 "with native bfloat16) or float16")
    compile_model: bool = option(False, "run the network through torch.compile (compiling costs the "
                                 "first tiles)")
    output_prefix: str = option("", "prefix of the output file names: "
                                "<prefix>_<rlnTomoName>_corrected.mrc (\"\": <rlnTomoName>_corrected.mrc)")
    halves_input: HalvesInput = option("auto", "N2N models on even/odd halves: the main map is "
                                       "predicted from the halves' voxel-wise average (average: "
                                       "half the noise of either half) or is the average of the "
                                       "two half predictions (halves: the IsoNet2 program's "
                                       "way); auto: average for refine models (the wedge fills "
                                       "better from less noise), halves for denoise models; the "
                                       "halves are predicted in every case, for their own maps "
                                       "and the FSC weights")
    fsc_weighting: bool = option(True, "N2N models on even/odd halves: weight each Fourier shell of "
                                 "the averaged map by sqrt(2 FSC / (1 + FSC)) of its two half "
                                 "predictions, damping the shells where they disagree (noise; "
                                 "the half maps stay unweighted)")
    save_slices: bool = option(False, "also write <output>_slices.png (orthoslices) and "
                               "<output>_spectrum.png (Fourier XZ slice) beside each output (the "
                               "IsoNet2 program does by default)")
    memory_gb: Optional[float] = memory_option()

    def validate(self) -> PredictConfig:
        """Check the values.

        Returns
        -------
        PredictConfig
            ``self``, when every value is valid.

        Raises
        ------
        ValueError
            Naming the first invalid value.
        """
        _check(1.0 <= self.padding_factor <= 4.0, f"padding_factor must be in [1, 4], got {self.padding_factor}")
        _check("/" not in self.output_prefix and "\\" not in self.output_prefix,
               f"output_prefix must be a file-name prefix, not a path: {self.output_prefix!r}")
        _check(self.batch_size >= 1, f"batch_size must be at least 1, got {self.batch_size}")
        _check(self.amp_dtype in AMP_DTYPES, f"amp_dtype must be one of {AMP_DTYPES}, got {self.amp_dtype!r}")
        _check(self.halves_input in HALVES_INPUTS,
               f"halves_input must be one of {HALVES_INPUTS}, got {self.halves_input!r}")
        check_memory_gb(self.memory_gb)
        return self


@dataclass(frozen=True)
class ReportConfig:
    """Settings of ``isonet2 report`` (figures and numbers of a run)."""
    n_average: int = option(5, "adjacent slices averaged in each orthoslice")
    percentiles: Tuple[float, float] = (1.0, 99.0)    # grey-scale limits of orthoslices
    crop_size: Optional[int] = option(256, "Fourier slices and numbers use the central crop_size "
                                      "voxels of each axis (bounds time and memory for large "
                                      "tomograms); None: whole volumes", unit="voxels")
    fsc_threshold: float = option(0.143, "FSC value that defines the resolutions in the table")
    formats: Tuple[str, ...] = ("html", "md")         # pages written: html and/or md (--format)

    def validate(self) -> ReportConfig:
        """Check the values.

        Returns
        -------
        ReportConfig
            ``self``, when every value is valid.

        Raises
        ------
        ValueError
            Naming the first invalid value.
        """
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
    """The fields of a config as a dict, ready for JSON (which writes tuples as lists).

    Parameters
    ----------
    cfg : dataclass instance
        A config.

    Returns
    -------
    dict
        Field name to value.
    """
    return dataclasses.asdict(cfg)
