"""The core's options as form parameters.

Every option of a core config class (:func:`isonet2core.config.options_of`) becomes one form
parameter: its name on the command line, its type, default and choices come from the config
field, so an option added to the core appears in the forms (as an expert parameter labelled
with its name) without an edit here. What stays here is presentation: labels, form help,
expert level, conditions and validators (:class:`Look`), and the options the plugin sets
itself (``EXCLUDED``).
"""
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Sequence, Tuple

from pyworkflow.protocol import params
from pyworkflow.protocol.params import Conditional

from isonet2core.config import (
    DEFAULT_LOSS_FUNC,
    REFINE_ONLY,
    DeconvConfig,
    MaskConfig,
    OptionField,
    PredictConfig,
    TrainConfig,
    options_of,
    refine_method,
)
from isonet2scipion.constants import (
    CLIP_MODE_CHOICES,
    CTF_CORRECTED_AUTO,
    CTF_CORRECTED_CHOICES,
    CTF_MODE_CHOICES,
)

P = params


# ------------------------------------------------------------------ validators
class OptionalGE(Conditional):
    """``value >= threshold`` for parameters that may be left empty."""

    def __init__(self, threshold, error):
        Conditional.__init__(self, error, allowsNull=True)
        self._condition = lambda value: value >= threshold


class OptionalOpenRange(Conditional):
    """``low < value < high`` for parameters that may be left empty."""

    def __init__(self, low, high, error):
        Conditional.__init__(self, error, allowsNull=True)
        self._condition = lambda value: low < value < high


class MultipleOf16(Conditional):
    def __init__(self, error="The cube size must be a positive multiple of 16"):
        Conditional.__init__(self, error)
        self._condition = lambda value: value is not None and value >= 16 and value % 16 == 0


# ------------------------------------------------------------------ one option
@dataclass(frozen=True)
class Look:
    """How the form shows one core option. ``attr``: the protocol attribute when it is not the
    option's name (two steps' options in one form); ``labels``: enum choice labels when they
    are not the core's values; ``noneChoice``: offer None in an enum of an Optional field;
    ``default``: a core value when the field's default is resolved later (the loss)."""
    label: str
    help: Optional[str] = None
    attr: Optional[str] = None
    expert: bool = False
    condition: Optional[str] = None
    validators: Tuple[Any, ...] = ()
    labels: Optional[Sequence[str]] = None
    noneChoice: bool = True
    default: Any = None


def _paramClass(opt: OptionField, values):
    if values is not None:
        return P.EnumParam
    return {bool: P.BooleanParam, int: P.IntParam, float: P.FloatParam}.get(opt.base, P.StringParam)


class CoreOption:
    """One core option shown in a form: ``flag`` is the core's option (``--<flag>``), ``attr``
    the protocol attribute. Enum parameters hold the index of the core value."""

    def __init__(self, opt: OptionField, look: Look, attrPrefix: str = ""):
        self.field = opt
        self.flag = opt.flag
        self.attr = look.attr or attrPrefix + opt.flag
        self.values = None if opt.choices is None else [
            c for c in opt.choices if c is not None or look.noneChoice]
        self.paramClass = _paramClass(opt, self.values)
        core = look.default if look.default is not None else opt.default
        if self.values is not None:
            self.default = self.values.index(core)
        elif isinstance(core, tuple):
            self.default = ",".join(str(v) for v in core)
        else:
            self.default = core
        self.choices = list(look.labels) if look.labels else (
            None if self.values is None else ["None" if v is None else str(v) for v in self.values])
        unit = f" ({opt.spec.unit})" if opt.spec.unit else ""
        self.label = look.label
        self.help = look.help or (opt.spec.help[:1].upper() + opt.spec.help[1:] + unit + ".")
        self.expert = look.expert
        self.condition = look.condition
        self.validators = list(look.validators)
        self.allowsNull = opt.optional and self.values is None

    def addTo(self, form, condition=None):
        """Add the parameter; ``condition`` (a form condition) is combined with the option's."""
        kwargs = dict(default=self.default, label=self.label,
                      help=f"{self.help}\n\nIsoNet2 option: --{self.flag}",
                      validators=self.validators, allowsNull=self.allowsNull,
                      expertLevel=params.LEVEL_ADVANCED if self.expert else params.LEVEL_NORMAL)
        if self.choices is not None:
            kwargs["choices"] = self.choices
            kwargs["display"] = params.EnumParam.DISPLAY_COMBO
        conditions = [c for c in (self.condition, condition) if c]
        if conditions:
            kwargs["condition"] = " and ".join(f"({c})" for c in conditions)
        form.addParam(self.attr, self.paramClass, **kwargs)

    def coreValue(self, protocol):
        """The option's value in the core's terms (None where the form leaves it empty)."""
        raw = getattr(protocol, self.attr).get()
        if raw is None or self.values is None:
            return raw
        return self.values[raw]

    def value(self, protocol) -> Optional[str]:
        """The value as the core's command line wants it, or None to leave the option out."""
        value = self.coreValue(protocol)
        if value is None:
            return None
        if isinstance(value, bool):
            return "True" if value else "False"
        return str(value)


class CtfCorrectedOption(CoreOption):
    """Whether the tomograms were reconstructed from CTF phase-flipped tilt series. Its default,
    auto, follows the tomograms' state (:func:`isonet2scipion.ctf_inputs.flip_state`: their
    CTF-corrected flag, else the flag of the tilt series they were reconstructed from), so that
    corrected data are not corrected twice; where no flag tells, auto is refused when a CTF is
    applied (the protocol's ``_ctfStateErrors``)."""

    def __init__(self, opt: OptionField, look: Look, attrPrefix: str = ""):
        CoreOption.__init__(self, opt, look, attrPrefix)
        self.paramClass = P.EnumParam
        self.choices = CTF_CORRECTED_CHOICES
        self.default = CTF_CORRECTED_AUTO
        self.help = (self.help + " Auto, per tomogram: yes when the tomogram is flagged "
                     "CTF-corrected (AreTomo flags the tomograms it corrects); else the flag of "
                     "the tilt series it was reconstructed from (the 'Tilt series' input: IMOD's "
                     "CTF correction flags its output tilt series, and the flag does not reach "
                     "the tomograms reconstructed from them); else yes when the tilt series of "
                     "its CTF estimation is flagged. Where none of these tells, or the "
                     "tomograms differ, auto is refused when a CTF is applied: give the tilt "
                     "series or choose yes or no. The summary says per tomogram where the "
                     "state came from.")

    def coreValue(self, protocol):
        return protocol._ctfFlipped(self)


CTF_CORRECTED_FIELDS = {(DeconvConfig, "phaseflipped"), (TrainConfig, "is_ctf_flipped"),
                        (PredictConfig, "is_ctf_flipped")}
"""The "already phase flipped?" options: their default follows the tomograms' flag."""


def catalogue(config, looks: Dict[str, Look], exclude: Sequence[str] = (),
              attrPrefix: str = "") -> List[CoreOption]:
    """A form parameter for every option of ``config`` but ``exclude``, in field order; an
    option without a look is shown as an expert parameter labelled with its name."""
    out: List[CoreOption] = []
    for opt in options_of(config):
        if opt.name in exclude:
            continue
        look = looks.get(opt.name) or Look(label=opt.flag.replace("_", " ").capitalize(), expert=True)
        kind = CtfCorrectedOption if (config, opt.name) in CTF_CORRECTED_FIELDS else CoreOption
        out.append(kind(opt, look, attrPrefix))
    unknown = set(looks) - {o.name for o in options_of(config)}
    if unknown:
        raise KeyError(f"looks for options that {config.__name__} does not have: {sorted(unknown)}")
    return out


def coreArgs(protocol, options: Sequence[CoreOption]) -> List[str]:
    """``--flag value`` for every option the form gives a value."""
    args = []
    for opt in options:
        value = opt.value(protocol)
        if value is not None:
            args += [f"--{opt.flag}", value]
    return args


_MEMORY = Look("Memory budget (GiB)",
               "The memory each tomogram's step may use: it works in blocks that fit (the same "
               "result) and refuses, before any work, a tomogram whose smallest block does not. "
               "Empty: the memory available, or the queue's allocation (SLURM).", expert=True,
               validators=(OptionalOpenRange(0.0, float("inf"), "memory_gb must be positive"),))
_FLIPPED = Look("Tomograms already phase flipped?",
                "Yes when the tomograms were reconstructed from CTF phase-flipped tilt series.")
_WIENER = f"CTF_mode == {CTF_MODE_CHOICES.index('wiener')}"     # the form stores the choice's index
_CTF = f"CTF_mode != {CTF_MODE_CHOICES.index('None')}"

DECONV_OPTIONS = catalogue(DeconvConfig, {
    "snrfalloff": Look("SNR fall-off",
                       "How fast the assumed signal-to-noise ratio falls with spatial frequency. "
                       "Larger values filter high frequencies more strongly; 0: a constant SNR.",
                       validators=(P.GE(0, "snrfalloff must not be negative"),)),
    "deconvstrength": Look("Deconvolution strength",
                           "Scales the assumed SNR by 10^deconvstrength: larger values restore "
                           "low frequencies more strongly."),
    "highpassnyquist": Look("High-pass (fraction of Nyquist)",
                            "Frequencies below this fraction of Nyquist are removed.", expert=True,
                            validators=(P.Range(0.0, 0.99, "highpassnyquist must be in [0, 1)"),)),
    "chunk_size": Look("Chunk size (voxels)",
                       "Deconvolve in cubic chunks of this edge to save memory; empty: whole "
                       "tomogram.", expert=True,
                       validators=(OptionalGE(16, "chunk_size must be at least 16 voxels"),)),
    "overlap_rate": Look("Chunk overlap", "Overlap between chunks, as a fraction of the chunk size.",
                         expert=True,
                         validators=(P.Range(0.0, 0.49, "overlap_rate must be in [0, 0.5)"),)),
    "memory_gb": _MEMORY,
    "phaseflipped": _FLIPPED,
}, exclude=("ncpus",))      # the protocol's threads (binThreads)

MASK_OPTIONS = catalogue(MaskConfig, {
    "patch_size": Look("Patch size (voxels)",
                       "Size of the local windows in which density and standard deviation are "
                       "measured.", validators=(P.GE(1, "patch_size must be at least 1"),)),
    "density_percentage": Look("Density percentage",
                               "Keep the voxels whose local density ranks in this top percentage.",
                               validators=(P.Range(0.01, 100.0,
                                                   "density_percentage must be in (0, 100]"),)),
    "std_percentage": Look("Standard deviation percentage",
                           "Keep the voxels whose local standard deviation ranks in this top "
                           "percentage.",
                           validators=(P.Range(0.01, 100.0, "std_percentage must be in (0, 100]"),)),
    "z_crop": Look("Z crop", "Fraction of the thickness excluded from the mask (half at the top, "
                   "half at the bottom).", validators=(P.Range(0.0, 0.99, "z_crop must be in [0, 1)"),)),
    "memory_gb": _MEMORY,
})

_TRAIN_LOOKS = {
    "arch": Look("Network architecture",
                 "U-Net size: unet-small, unet-medium (default of IsoNet2) or unet-large; the "
                 "plain- variants have no normalisation layers."),
    "cube_size": Look("Cube size (voxels)",
                      "Edge of the training subtomograms; a multiple of 16 (96-128 typical).",
                      validators=(MultipleOf16(),)),
    "epochs": Look("Epochs", "Number of training epochs (50-100 typical).",
                   validators=(P.GE(1, "epochs must be at least 1"),)),
    "batch_size": Look("Batch size",
                       "Subtomograms per optimisation step; empty: automatic from the device "
                       "memory.", validators=(OptionalGE(1, "batch_size must be at least 1"),)),
    "number_subtomos": Look("Subtomograms per tomogram",
                            "Subtomograms drawn per tomogram and epoch; empty: about 3000 in total "
                            "per epoch.",
                            validators=(OptionalGE(1, "number_subtomos must be at least 1"),)),
    "ctf_mode": Look("CTF mode",
                     "None: no CTF handling; phase_only: phase flipping; wiener: train against "
                     "Wiener-filtered targets; network: the network learns the CTF correction. "
                     "All but None need a defocus (CTF set or value). IsoNet2's CTF has no "
                     "phase shift: phase-plate data (a CTF phase shift in the estimations) "
                     "are refused in the CTF modes."),
    "is_ctf_flipped": _FLIPPED,
    "do_phaseflip_input": Look("Phase flip the input?",
                               "Phase flip the network input when a CTF mode is used.",
                               expert=True, condition=_CTF),
    "bfactor": Look("B-factor (Å²)",
                    "Envelope exp(-B f²/4) applied to the network-mode CTF before and after "
                    "first-peak clipping, as the IsoNet2 program does: 200-300 for isolated "
                    "particles, 0 or negative for cells.", expert=True, condition=_CTF),
    "clip_first_peak_mode": Look("Clip below the first CTF peak",
                                 "How the CTF is treated below its first peak: 0 none, "
                                 "1 constant, 2 negative sine, 3 cosine.",
                                 labels=CLIP_MODE_CHOICES, expert=True, condition=_CTF),
    "snrfalloff": Look("SNR fall-off (wiener)",
                       "SNR fall-off of the Wiener target (wiener mode); 0: a constant SNR.",
                       expert=True, condition=_WIENER,
                       validators=(P.GE(0, "snrfalloff must not be negative"),)),
    "deconvstrength": Look("Deconvolution strength (wiener)",
                           "Strength of the Wiener target (wiener mode).", expert=True,
                           condition=_WIENER),
    "highpassnyquist": Look("High-pass (wiener)",
                            "High-pass of the Wiener target, fraction of Nyquist (wiener mode).",
                            expert=True, condition=_WIENER,
                            validators=(P.Range(0.0, 0.99, "highpassnyquist must be in [0, 1)"),)),
    "loss_func": Look("Loss function",
                      "L2, L1, Huber, FSC (1 - mean shell Fourier correlation) or FSC+L2 (their "
                      "sum). Defaults, measured beside the IsoNet2 program on realistic lamellae: "
                      "FSC for refine, FSC+L2 for denoise.", expert=True, noneChoice=False,
                      default=DEFAULT_LOSS_FUNC[refine_method(halves=True)]),
    "learning_rate": Look("Learning rate", "Initial learning rate.", expert=True,
                          validators=(P.Positive,)),
    "learning_rate_min": Look("Minimum learning rate",
                              "Learning rate at the end of the cosine schedule (equal to the "
                              "learning rate: constant).", expert=True,
                              validators=(P.GE(0, "learning_rate_min must not be negative"),)),
    "ema_decay": Look("Weight averaging decay",
                      "Predict with an exponential moving average of the weights, updated every "
                      "optimiser step (decay d, with the warm-up min(d, (1+n)/(10+n))). Empty: "
                      "the last weights.", expert=True,
                      validators=(OptionalOpenRange(0.0, 1.0, "ema_decay must be in (0, 1)"),)),
    "acc_batches": Look("Accumulated batches", "Gradient accumulation over this many batches.",
                        expert=True, validators=(P.GE(1, "acc_batches must be at least 1"),)),
    "mixed_precision": Look("Mixed precision?", "Half-precision arithmetic on GPUs and on CPUs "
                            "with native bfloat16.", expert=True),
    "amp_dtype": Look("Mixed-precision dtype",
                      "auto: bfloat16 on GPUs that support it, else float16; on CPUs with native "
                      "bfloat16, bfloat16 for subtomograms of 48 and up, else float32. bfloat16: "
                      "also on CPUs with native bfloat16.", expert=True,
                      condition="mixed_precision"),
    "compile_model": Look("Compile the network?",
                          "Run the network through torch.compile (the first steps compile it).",
                          expert=True),
    "save_interval": Look("Save interval (epochs)",
                          "A checkpoint copy is kept every this many epochs.", expert=True,
                          validators=(P.GE(1, "save_interval must be at least 1"),)),
    "with_preview": Look("Write previews?",
                         "Write preview slices of the prediction at each saved epoch.", expert=True),
    "prev_tomo_idx": Look("Tomograms previewed", "rlnIndex values (1 = the first tomogram of the "
                          "input set) of the tomograms previewed, e.g. 1,3 or 2-4.", expert=True,
                          condition="with_preview"),
    "split_halves": Look("Split halves?",
                         "Train two independent networks on the even and odd halves (gold "
                         "standard).", expert=True),
    "seed": Look("Random seed", "Seed of every random draw (reproducible runs).", expert=True),
    "mw_weight": Look("Missing-wedge loss weight",
                      "Weight of the loss in the missing-wedge region (the paper uses 20-200). 0 "
                      "or negative (the IsoNet2 program's -1): a plain loss over the whole cube, "
                      "no masks."),
    "mw_loss_func": Look("Missing-wedge loss function",
                         "Loss of the missing-wedge term, of the same choices; 'as the loss "
                         "function': the loss function's. FSC+L2 weighs the filling by its power: "
                         "measured, a higher missing-wedge FSC on an independent simulator's "
                         "lamella, a lower one on ours, a lower Pearson on all (README).",
                         expert=True, labels=("as the loss function", "L2", "L1", "Huber", "FSC", "FSC+L2")),
    "noise_level": Look("Noise level",
                        "Synthetic noise added to the inputs (single-map refine learns to "
                        "denoise), on the IsoNet2 program's scale: its std is this times each "
                        "cube's 4-96 percentile range.", expert=True,
                        validators=(P.GE(0, "noise_level must not be negative"),)),
    "noise_mode": Look("Noise mode",
                       "Spectrum of the synthetic noise: back-projection noise of a tilt series, "
                       "unweighted (nofilter, the IsoNet2 default), ramp- or Hamming-weighted, or "
                       "white.", expert=True),
    "random_rot_weight": Look("Random rotation weight",
                              "Fraction of arbitrary (not 90-degree) rotations.", expert=True,
                              validators=(P.Range(0.0, 1.0, "random_rot_weight must be in [0, 1]"),)),
    "random_rot_interp": Look("Random rotation resampling",
                              "How the arbitrary rotations resample a subtomogram: trilinear, zeros "
                              "outside it, or nearest, the outside reflected in (the IsoNet2 "
                              "program's).", expert=True),
    "random_rot_angle": Look("Random rotation angles",
                             "How the arbitrary rotations are drawn: haar, uniform over all "
                             "rotations, or uniform, a random axis turned by an angle uniform in "
                             "[0, 360) degrees (the IsoNet2 program's: more small turns).", expert=True),
    "fill_noise": Look("Wedge filling noise",
                       "Spectrum of the noise put back into the missing-wedge filling: white, at "
                       "the halves' mean noise level (the paper), or shells, each Fourier shell at "
                       "the halves' noise level of that shell.", expert=True),
    "fill_reuse": Look("Steps per wedge filling",
                       "Each batch of subtomograms is trained in this many consecutive steps (new "
                       "rotations each time) and its missing-wedge filling is predicted once; 1 "
                       "predicts it on every step (slower).", expert=True,
                       validators=(P.GE(1, "fill_reuse must be at least 1"),)),
}
TRAIN_OPTIONS = catalogue(TrainConfig, _TRAIN_LOOKS, exclude=REFINE_ONLY)
"""The training options of refine and denoise."""
REFINE_OPTIONS = catalogue(TrainConfig, _TRAIN_LOOKS,
                           exclude=[o.name for o in options_of(TrainConfig) if o.name not in REFINE_ONLY])
"""The training options of refine only (config.REFINE_ONLY)."""

PREDICT_OPTIONS = catalogue(PredictConfig, {
    "apply_mw_x1": Look("Re-wedge the input tiles?",
                        "Remove the missing-wedge region from each input tile before the "
                        "network, as its training inputs were (refine models; denoise models "
                        "never re-wedge).", attr="apply_mw_x1"),
    "is_ctf_flipped": Look("Tomograms already phase flipped?",
                           "Yes when the tomograms were reconstructed from phase-flipped tilt "
                           "series (used with networks trained with a CTF mode)."),
    "padding_factor": Look("Padding factor",
                           "Tile spacing is the cube size divided by this factor (more overlap, "
                           "smoother seams, slower).", attr="padding_factor", expert=True,
                           validators=(P.Range(1.0, 4.0, "padding_factor must be in [1, 4]"),)),
    "batch_size": Look("Tiles per batch",
                       "Tiles predicted together (lower it if the GPU runs out of memory).",
                       expert=True, validators=(P.GE(1, "batch_size must be at least 1"),)),
    "mixed_precision": Look("Mixed precision?", "Half-precision arithmetic on GPUs and on CPUs "
                            "with native bfloat16.", expert=True),
    "amp_dtype": Look("Mixed-precision dtype", "auto: float16 on GPUs; bfloat16 on CPUs with native "
                      "bfloat16, else float32. bfloat16: also on CPUs with native bfloat16.",
                      expert=True,
                      condition="predict_mixed_precision"),
    "halves_input": Look("Main map predicted from",
                         "average: the even and odd tomograms' average, which has half the noise "
                         "of either (the halves are still predicted, for the half maps and the FSC "
                         "weights). halves: the average of the two half predictions, as the "
                         "IsoNet2 program does. auto: average for refine models (their wedge "
                         "fills better from it), halves for denoise models.", expert=True),
    "fsc_weighting": Look("FSC-weight the average?",
                          "Weight each Fourier shell of the averaged map by sqrt(2 FSC / (1 + FSC)) "
                          "of the even and odd predictions: shells where they disagree (noise) are "
                          "damped, which raises the map's correlation with the true density "
                          "(half maps are written unweighted)."),
    "memory_gb": _MEMORY,
}, exclude=("output_prefix",), attrPrefix="predict_")   # output names are the plugin's

CTF_CORRECTED_OPTIONS = [opt for opt in DECONV_OPTIONS + TRAIN_OPTIONS + PREDICT_OPTIONS
                         if isinstance(opt, CtfCorrectedOption)]
