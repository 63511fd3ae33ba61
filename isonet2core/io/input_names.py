"""Names of input map files: the even/odd tag of a half map's stem (EVN/ODD, even/odd,
half1/half2) and the tomogram name a map file gives (``tomo_001_EVN.mrc`` -> ``tomo_001``);
what prepare-star and the Scipion plugin pair halves by. Names the core writes are in
:mod:`isonet2core.io.output_names`.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Optional

from isonet2core.io.output_names import PathLike

# file suffixes of maps: a rlnTomoName value ending so (or holding a folder) is a path
MAP_SUFFIXES = (".mrc", ".rec", ".map", ".mrcs", ".st", ".ali")

# an even/odd tag in a file stem: EVN/ODD, even/odd, half1/half2 (half_1, half-2), delimited by
# the start/end of the stem or by '_', '-', '.'
_HALF_TAG = re.compile(r"(?<![^_.\-])(evn|even|odd|half[_\-]?[12])(?![^_.\-])", re.IGNORECASE)


def half_tag(stem: str) -> Optional[str]:
    """The even/odd tag of a file stem (the last one).

    Parameters
    ----------
    stem : str
        A file stem.

    Returns
    -------
    str or None
        ``"even"``, ``"odd"`` or None.
    """
    matches = list(_HALF_TAG.finditer(stem))
    if not matches:
        return None
    tag = matches[-1].group(1).lower().replace("_", "").replace("-", "")
    return "odd" if tag in ("odd", "half2") else "even"


def strip_half_tag(stem: str) -> str:
    """A stem without its (last) even/odd tag and one adjacent separator.

    Parameters
    ----------
    stem : str
        A file stem.

    Returns
    -------
    str
        ``tomo_001_EVN`` -> ``tomo_001``; ``even_tomo_001`` -> ``tomo_001``; a stem that would
        become empty is returned unchanged.
    """
    matches = list(_HALF_TAG.finditer(stem))
    if not matches:
        return stem
    start, end = matches[-1].span()
    if start > 0:
        start -= 1          # the separator before the tag
    elif end < len(stem):
        end += 1            # the tag starts the stem: drop the separator after it
    out = stem[:start] + stem[end:]
    return out or stem


def tomo_name_from_path(path: PathLike) -> str:
    """An identifier for a map file: its stem without an even/odd tag.

    Parameters
    ----------
    path : str or Path
        The map.

    Returns
    -------
    str
        The name.
    """
    name = Path(str(path)).name
    for suffix in MAP_SUFFIXES:
        if name.lower().endswith(suffix):
            name = name[: -len(suffix)]
            break
    return strip_half_tag(name)


def looks_like_path(value: str) -> bool:
    """Whether a value is a path rather than a name.

    Parameters
    ----------
    value : str
        A STAR value.

    Returns
    -------
    bool
        True when it holds a folder separator or ends in a map suffix (``.mrc`` ...).
    """
    return "/" in value or "\\" in value or value.lower().endswith(MAP_SUFFIXES)
