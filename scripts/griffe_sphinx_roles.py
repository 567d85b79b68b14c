"""A Griffe extension for the API reference (``mkdocs.yml``): the reStructuredText habits of the docstrings,
rendered as Markdown.

The docstrings are read in editors and by ``help()`` as much as on the site, so they keep the forms that
editors understand; Markdown has none of them, and without this extension the site would show them verbatim:

- a Sphinx role (``:class:`X```, ``:meth:`~a.b.c```) becomes a code span of its target, a leading ``~``
  keeping the last dotted part only, as Sphinx does;
- a paragraph ending in ``::`` ends in ``:`` (the indented block after it already is a Markdown code block),
  and a line that is only ``::`` goes;
- a simple table (columns framed by ``====  ====`` lines) becomes a Markdown table; a row whose first cell
  is empty continues the row above.

Double backticks already are Markdown code.
"""

from __future__ import annotations

import re
from typing import Any

import griffe

ROLE = re.compile(r":(?:class|meth|func|attr|mod|data|exc|obj|const):`(?P<target>[^`]+)`")
BORDER = re.compile(r"^(?P<indent>\s*)=+(?: +=+)+\s*$")


def _code(match: re.Match[str]) -> str:
    target = match.group("target").strip()
    if target.startswith("~"):
        target = target[1:].rsplit(".", 1)[-1]
    return f"`{target}`"


def _columns(border: str) -> list[tuple[int, int]]:
    return [(m.start(), m.end()) for m in re.finditer(r"=+", border)]


def _cells(line: str, columns: list[tuple[int, int]]) -> list[str]:
    starts = [start for start, _ in columns]
    return [line[start:stop].strip() for start, stop in zip(starts, [*starts[1:], len(line)], strict=True)]


def _joined(above: list[str], below: list[str]) -> list[str]:
    return [f"{old} {new}".strip() for old, new in zip(above, below, strict=True)]


def _table(lines: list[str], columns: list[tuple[int, int]]) -> list[str]:
    """A simple table's lines (borders included) as a Markdown table."""
    rows: list[list[str]] = []
    header: list[str] | None = None
    borders = 0
    for line in lines:
        if BORDER.match(line):
            borders += 1
            continue
        cells = _cells(line, columns)
        if rows and not cells[0] and borders >= 2:
            rows[-1] = _joined(rows[-1], cells)
        elif borders == 1:
            header = cells if header is None else _joined(header, cells)
        else:
            rows.append(cells)
    if header is None:
        header, rows = rows[0], rows[1:]
    out = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    out += ["| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |" for row in rows]
    return ["", *out, ""]


def convert(text: str) -> str:
    """``text`` with its roles, ``::`` paragraphs and simple tables in Markdown."""
    text = ROLE.sub(_code, text)
    lines = text.split("\n")
    out: list[str] = []
    index = 0
    while index < len(lines):
        line = lines[index]
        border = BORDER.match(line)
        if border:
            ends = [i for i in range(index + 1, len(lines)) if BORDER.match(lines[i])]
            if len(ends) >= 2:
                end = ends[1]
                out += _table(lines[index : end + 1], _columns(line))
                index = end + 1
                continue
        if line.strip() == "::":
            index += 1
            continue
        if line.endswith("::"):
            line = line[:-1]
        out.append(line)
        index += 1
    return "\n".join(out)


class SphinxRoles(griffe.Extension):
    """Rewrites every docstring as it is loaded, before it is parsed."""

    def on_instance(self, *, obj: griffe.Object, **kwargs: Any) -> None:
        if obj.docstring is not None:
            obj.docstring.value = convert(obj.docstring.value)
