"""One distribution, two packages: the IsoNet2 core (``isonet2core``) and the Scipion plugin
(``isonet2scipion``)."""
import re
from pathlib import Path

from setuptools import find_packages, setup

HERE = Path(__file__).parent
VERSION = re.search(r'__version__ = "([^"]+)"',
                    (HERE / "isonet2core" / "__init__.py").read_text()).group(1)

# the core's requirements live in one file, also read by the plugin when it builds the
# managed environment (isonet2scipion.core_wheel)
CORE = [line.strip() for line in
        (HERE / "isonet2core" / "requirements.txt").read_text().splitlines()
        if line.strip() and not line.lstrip().startswith("#")]
# what the plugin imports inside Scipion: installed with the distribution itself (the plugin
# manager installs no extras). Floors: the versions the plugin is tested with.
PLUGIN = [
    "scipion-pyworkflow>=3.11",
    "scipion-em>=3.11",
    "scipion-em-tomo>=3.12",
    "numpy",
    "pandas",      # the plugin writes/reads tomograms.star through isonet2core.star
    "starfile",
]
# the demo and the tests: the Scipion launcher, IMOD's CTF file parser, emtable
SCIPION = ["scipion-app", "scipion-em-imod", "emtable"]
DEV = ["pytest", "hypothesis", "ruff==0.17.6", "mypy==2.4.1"]

setup(
    name="scipion-em-isonet2scipion",
    version=VERSION,
    description="IsoNet2 cryo-ET restoration (missing wedge, denoising, CTF) in PyTorch, "
                "with a Scipion plugin",
    long_description=(HERE / "README.md").read_text(),
    long_description_content_type="text/markdown",
    license="GPLv3",
    python_requires=">=3.9",
    packages=find_packages(include=["isonet2core", "isonet2core.*",
                                    "isonet2scipion", "isonet2scipion.*"]),
    include_package_data=True,
    package_data={"isonet2core": ["data/*.npz", "requirements.txt", "py.typed"], "isonet2scipion": ["protocols.conf", "templates/*.json", "templates/*.json.template", "templates/*.conf"]},
    install_requires=PLUGIN,
    extras_require={"core": CORE, "scipion": SCIPION, "dev": DEV},
    entry_points={
        "console_scripts": ["isonet2 = isonet2core.cli.main:main"],
        "pyworkflow.plugin": ["isonet2scipion = isonet2scipion"],
    },
    classifiers=["Programming Language :: Python :: 3",
                 "Topic :: Scientific/Engineering :: Image Processing"],
)
