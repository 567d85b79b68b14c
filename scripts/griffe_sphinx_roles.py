"""A Griffe extension for the API reference (``mkdocs.yml``): Sphinx roles in docstrings become code spans.

The docstrings of this project are read in editors and by ``help()`` as much as on the site, so they keep the
Sphinx roles (``:class:`X```, ``:meth:`~a.b.c```) that editors understand; Markdown has no such roles, and
without this extension the site would show them verbatim. A role becomes a code span of its target, with a
leading ``~`` keeping the last dotted part only, as Sphinx does. Double backticks already are Markdown code.
"""

from __future__ import annotations

import re
from typing import Any

import griffe

ROLE = re.compile(r":(?:class|meth|func|attr|mod|data|exc|obj|const):`(?P<target>[^`]+)`")


def _code(match: re.Match[str]) -> str:
    target = match.group("target").strip()
    if target.startswith("~"):
        target = target[1:].rsplit(".", 1)[-1]
    return f"`{target}`"


def convert_roles(text: str) -> str:
    """``text`` with every Sphinx role replaced by a Markdown code span of its target."""
    return ROLE.sub(_code, text)


class SphinxRoles(griffe.Extension):
    """Rewrites the roles of every docstring as it is loaded, before it is parsed."""

    def on_instance(self, *, obj: griffe.Object, **kwargs: Any) -> None:
        if obj.docstring is not None:
            obj.docstring.value = convert_roles(obj.docstring.value)
