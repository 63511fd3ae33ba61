"""Names and versions shared by the plugin's modules."""
from isonet2core import __version__ as CORE_VERSION

ISONET2 = "isonet2"
ISONET2_VERSION = CORE_VERSION
ISONET2_ENV_NAME = f"{ISONET2}-{ISONET2_VERSION}"   # conda env name and software/em folder name

# variables (scipion.conf or the environment)
ISONET2_HOME = "ISONET2_HOME"                      # software/em/isonet2-<version>
ISONET2_ENV_ACTIVATION = "ISONET2_ENV_ACTIVATION"  # conda activation of the managed env
ISONET2_PYTHON = "ISONET2_PYTHON"                  # an interpreter that has isonet2core installed
ISONET2_TORCH = "ISONET2_TORCH"                    # the torch requirement the managed env installs

DEFAULT_ACTIVATION_CMD = f"conda activate {ISONET2_ENV_NAME}"
# torch 2.13.0: the version tested here. On Linux the PyPI wheel of that version is a CUDA
# build; on CPU-only machines an index or wheel cache that serves the CPU build of the same
# version avoids downloading several GB of CUDA packages.
DEFAULT_TORCH_SPEC = "torch==2.13.0"
VENV_DIR = "venv"                                  # inside ISONET2_HOME when conda is absent
INSTALLED_FLAG = f"{ISONET2}_{ISONET2_VERSION}_installed"
PIP_DISTRIBUTION = "scipion-em-isonet2"

# file names inside a protocol's extra folder
TOMOGRAMS_STAR = "tomograms.star"
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
METHOD_N2N_REFINE = "isonet2-n2n"
METHOD_SINGLE = "isonet2"
METHOD_DENOISE = "n2n"
REFINE_METHOD_CHOICES = [METHOD_AUTO, METHOD_N2N_REFINE, METHOD_SINGLE]

ARCH_CHOICES = ["unet-small", "unet-medium", "unet-large",
                "plain-unet-small", "plain-unet-medium", "plain-unet-large"]
LOSS_CHOICES = ["L2", "L1", "Huber", "FSC"]
CTF_MODE_CHOICES = ["None", "phase_only", "wiener", "network"]
NOISE_MODE_CHOICES = ["white", "ramp", "hamming"]
CLIP_MODE_CHOICES = ["0: none", "1: constant", "2: negative sine", "3: cosine"]
