"""The report page: sections of text, a table and PNG figures, written as ``report.html`` and
its Markdown twin ``report.md`` (paths relative to the page's folder, so the folder can be
moved as a whole). :mod:`isonet2core.report.run_report` assembles what a run's page shows.
"""
from __future__ import annotations

import html
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Optional, Sequence, Tuple

from isonet2core.io import atomic
from isonet2core.io.output_names import PathLike

REPORT_STEM = "report"


@dataclass(frozen=True)
class ReportImage:
    """A PNG of the page: ``file`` is its name relative to the page's folder."""
    file: str
    caption: str


@dataclass(frozen=True)
class ReportTable:
    """A table of text cells: ``headers`` and ``rows`` (each as long as ``headers``)."""
    headers: Tuple[str, ...]
    rows: Tuple[Tuple[str, ...], ...]


@dataclass(frozen=True)
class ReportSection:
    """One section of the page: a title, an optional paragraph, table and images."""
    title: str
    text: str = ""
    table: Optional[ReportTable] = None
    images: Tuple[ReportImage, ...] = ()


def write_report(output_dir: PathLike, title: str, sections: Sequence[ReportSection], *,
                 formats: Sequence[str] = ("html", "md"), stem: str = REPORT_STEM) -> Dict[str, Path]:
    """Write the page ``OUTPUT_DIR/<stem>.html`` and/or its Markdown twin ``<stem>.md``, atomically.

    Both show the same sections in order: title, text, table, then the images (``<img>`` /
    ``![]()`` with paths relative to ``output_dir``, so the folder can be moved or copied as a
    whole).

    Parameters
    ----------
    output_dir : str or Path
        The report folder.
    title : str
        Page title.
    sections : sequence of ReportSection
        The content.
    formats : sequence of str
        ``html`` and/or ``md``.
    stem : str
        File name stem.

    Returns
    -------
    dict
        ``{"html": path, "md": path}`` for the formats written.

    Raises
    ------
    ValueError
        An image that is not an existing file inside ``output_dir``, a table row that does not
        match its headers, or an unknown format.
    """
    out = Path(output_dir)
    unknown = [f for f in formats if f not in ("html", "md")]
    if unknown or not formats:
        raise ValueError(f"report formats must be html and/or md, got {list(formats)}")
    for section in sections:
        for image in section.images:
            path = out / image.file
            if Path(image.file).is_absolute() or ".." in Path(image.file).parts or not path.is_file():
                raise ValueError(f"report image {image.file!r} is not a file inside {out}")
        if section.table is not None:
            width = len(section.table.headers)
            for row in section.table.rows:
                if len(row) != width:
                    raise ValueError(f"report table of section {section.title!r}: row {row} has "
                                     f"{len(row)} cells for {width} headers")
    written: Dict[str, Path] = {}
    for fmt in formats:
        text = _html_page(title, sections) if fmt == "html" else _markdown_page(title, sections)
        written[fmt] = atomic.write_text(out / f"{stem}.{fmt}", text)
    return written


def _html_page(title: str, sections: Sequence[ReportSection]) -> str:
    esc = html.escape
    parts = ["<!DOCTYPE html>", "<html lang=\"en\">", "<head>", "<meta charset=\"utf-8\">",
             f"<title>{esc(title)}</title>",
             "<style>body{font-family:sans-serif;max-width:1400px;margin:1em auto;padding:0 1em}"
             "table{border-collapse:collapse;margin:0.5em 0}"
             "th,td{border:1px solid #bbb;padding:3px 8px;text-align:left}th{background:#eee}"
             "figure{display:inline-block;margin:0.5em;vertical-align:top}"
             "img{max-width:100%}figcaption{font-size:90%;color:#333;max-width:900px}</style>",
             "</head>", "<body>", f"<h1>{esc(title)}</h1>"]
    for section in sections:
        parts.append(f"<h2>{esc(section.title)}</h2>")
        if section.text:
            parts.append(f"<p>{esc(section.text)}</p>")
        if section.table is not None:
            parts.append("<table>")
            parts.append("<tr>" + "".join(f"<th>{esc(h)}</th>" for h in section.table.headers) + "</tr>")
            for row in section.table.rows:
                parts.append("<tr>" + "".join(f"<td>{esc(c)}</td>" for c in row) + "</tr>")
            parts.append("</table>")
        for image in section.images:
            parts.append(f"<figure><img src=\"{esc(image.file, quote=True)}\" alt=\"{esc(image.caption, quote=True)}\">"
                         f"<figcaption>{esc(image.caption)}</figcaption></figure>")
    parts += ["</body>", "</html>", ""]
    return "\n".join(parts)


def _md_cell(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def _markdown_page(title: str, sections: Sequence[ReportSection]) -> str:
    lines = [f"# {title}", ""]
    for section in sections:
        lines += [f"## {section.title}", ""]
        if section.text:
            lines += [section.text, ""]
        if section.table is not None:
            lines.append("| " + " | ".join(_md_cell(h) for h in section.table.headers) + " |")
            lines.append("|" + "---|" * len(section.table.headers))
            lines += ["| " + " | ".join(_md_cell(c) for c in row) + " |" for row in section.table.rows]
            lines.append("")
        for image in section.images:
            alt = image.caption.replace("[", "(").replace("]", ")")
            lines += [f"![{alt}]({image.file.replace(' ', '%20')})", "", f"*{image.caption}*", ""]
    return "\n".join(lines)
