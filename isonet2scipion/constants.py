"""Names and versions shared by the plugin's modules."""
from isonet2core import __version__ as CORE_VERSION
from isonet2core.config import ARCHS, CTF_MODES, DENOISE_METHOD, LOSS_FUNCS, NOISE_MODES, REFINE_METHODS, refine_method

# Names of our own: the Scipion team's plugin for the official program (scipion-em-isonet2,
# package ``isonet2``) uses ISONET2_HOME / ISONET2_ENV_ACTIVATION and the binary ``isonet2``;
# pyworkflow keeps one variable dictionary for all plugins, so ours must differ to load beside it.
PIP_DISTRIBUTION = "scipion-em-isonet2scipion"
BINARY_NAME = "isonet2scipion"                    # `scipion installb isonet2scipion-<version>`
ISONET2_VERSION = CORE_VERSION
ENV_NAME = f"{BINARY_NAME}-{ISONET2_VERSION}"      # conda env name and software/em folder name

# variables (scipion.conf or the environment)
HOME_VAR = "ISONET2SCIPION_HOME"                      # software/em/isonet2scipion-<version>
ENV_ACTIVATION_VAR = "ISONET2SCIPION_ENV_ACTIVATION"  # conda activation of the managed env
PYTHON_VAR = "ISONET2SCIPION_PYTHON"                  # an interpreter that has isonet2core
TORCH_VAR = "ISONET2SCIPION_TORCH"                    # pip arguments installing PyTorch there

DEFAULT_ACTIVATION_CMD = f"conda activate {ENV_NAME}"
# pip arguments, split like a shell would: e.g. "torch==2.13.0 --index-url
# https://download.pytorch.org/whl/cu126" chooses a CUDA build. torch 2.13.0: the version
# tested here. On Linux the PyPI wheel of that version is a CUDA build; on CPU-only machines an
# index or wheel cache that serves the CPU build of the same version avoids several GB of CUDA
# packages.
DEFAULT_TORCH_SPEC = "torch==2.13.0"
VENV_DIR = "venv"                                  # inside the home folder when conda is absent
INSTALLED_FLAG = f"{BINARY_NAME}_{ISONET2_VERSION}_installed"

# file names inside a protocol's extra folder
# the STAR the core runs on (IsoNet2 layout when the file names allow; the RELION-5 export
# is relion5/tomograms.star: isonet2scipion.relion_export)
TOMOGRAMS_STAR = "isonet2_tomograms.star"
PER_TOMOGRAM_DIR = "per_tomogram"

# how the two half maps linked to a tomogram are ordered (form option "halfOrder")
HALF_ORDER_AUTO = 0        # file-name tags (even/evn/half1, odd/half2), else [odd, even]
HALF_ORDER_ODD_EVEN = 1    # [odd, even]: what IMOD and AreTomo store in Scipion
HALF_ORDER_EVEN_ODD = 2    # [even, odd]
HALF_ORDER_CHOICES = ["auto (file-name tags)", "[odd, even]", "[even, odd]"]

# where the even/odd halves come from (form option "halvesSource")
HALVES_LINKED = 0          # half maps attached to the tomograms (Volume.getHalfMaps)
HALVES_SEPARATE = 1        # two sets of tomograms matched by tsId
HALVES_NONE = 2            # full tomograms only
HALVES_CHOICES = ["linked to the tomograms", "separate even and odd sets", "none"]

# training methods (isonet2core.config.METHODS) and the form's choice list for refine
METHOD_AUTO = "auto"
METHOD_N2N_REFINE = refine_method(halves=True)
METHOD_SINGLE = refine_method(halves=False)
METHOD_DENOISE = DENOISE_METHOD
REFINE_METHOD_CHOICES = [METHOD_AUTO, *REFINE_METHODS]

# the forms' enum choices are the core's values in the core's order (isonet2core.config)
ARCH_CHOICES = list(ARCHS)
LOSS_CHOICES = list(LOSS_FUNCS)
CTF_MODE_CHOICES = ["None" if m is None else m for m in CTF_MODES]
NOISE_MODE_CHOICES = list(NOISE_MODES)
CLIP_MODE_CHOICES = ["0: none", "1: constant", "2: negative sine", "3: cosine"]

# are the tomograms CTF phase flipped? (form options isCTFflipped/phaseflipped)
CTF_CORRECTED_AUTO = 0     # the tomograms' or their tilt series' flag (ctf_inputs.flip_state)
CTF_CORRECTED_YES = 1
CTF_CORRECTED_NO = 2
CTF_CORRECTED_CHOICES = ["auto (CTF-corrected flag of the tomograms or their tilt series)",
                         "yes", "no"]
