"""The API reference (``docs/reference/``) covers the whole public API, and every public name has a docstring.

The public API is listed from the code, so that a name added later is checked too: the names of
``dominus_fastapi.__all__``; the thirteen namespaces of the client and every public method of each (inherited
ones included); the ``__all__`` of the FastAPI modules, of the pytest plugin (its fixtures and helpers) and of
``dominus_local``; and the public methods and properties that the exported classes define themselves.

A name is covered when the site built from ``mkdocs.yml`` lists it in its objects inventory (``objects.inv``),
which holds exactly the objects that the ``:::`` directives of the reference rendered. The members of a
rendered class or module appear there only when they have a docstring (``show_if_no_docstring`` is off), so
a method without one fails both checks. The site is built once per session, without ``--strict`` so that a
broken link on a page outside the reference does not hide what this module checks; warnings of the API
reference's own machinery (griffe, mkdocstrings) still fail it.
"""

from __future__ import annotations

import functools
import importlib
import inspect
import re
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dominus_fastapi.core.client import _ClientBase

ROOT = Path(__file__).resolve().parents[2]
REFERENCE = ROOT / "docs" / "reference"

NAMESPACES: dict[str, str] = {
    "secrets": "dominus_fastapi.core.namespaces.secrets.SecretsNamespace",
    "db": "dominus_fastapi.core.namespaces.db.DbNamespace",
    "secure": "dominus_fastapi.core.namespaces.db.SecureNamespace",
    "open": "dominus_fastapi.core.namespaces.db.OpenNamespace",
    "redis": "dominus_fastapi.core.namespaces.redis.RedisNamespace",
    "files": "dominus_fastapi.core.namespaces.files.FilesNamespace",
    "auth": "dominus_fastapi.core.namespaces.auth.AuthNamespace",
    "ddl": "dominus_fastapi.core.namespaces.ddl.DdlNamespace",
    "logs": "dominus_fastapi.core.namespaces.logs.LogsNamespace",
    "portal": "dominus_fastapi.core.namespaces.portal.PortalNamespace",
    "courier": "dominus_fastapi.core.namespaces.courier.CourierNamespace",
    "health": "dominus_fastapi.core.namespaces.health.HealthNamespace",
    "admin": "dominus_fastapi.core.namespaces.admin.AdminNamespace",
}
"""Each namespace of the client (``client.<name>``) and its class."""

MODULES_WITH_ALL = (
    "dominus_fastapi",
    "dominus_fastapi.setup",
    "dominus_fastapi.lifespan",
    "dominus_fastapi.deps",
    "dominus_fastapi.middleware",
    "dominus_fastapi.guards",
    "dominus_fastapi.handlers",
    "dominus_fastapi.tenancy",
    "dominus_fastapi.caching",
    "dominus_fastapi.responses",
    "dominus_fastapi.routers",
    "dominus_fastapi.testing",
    "dominus_local",
    "dominus_local.cli",
)
"""Modules whose ``__all__`` is public API."""

ROLE = re.compile(r":(class|meth|func|attr|mod|data|exc):`")
RST_TABLE = re.compile(r"^\s*={3,}(?: +={3,})+\s*$", re.MULTILINE)


@dataclass(frozen=True)
class Name:
    """One public name: where a user reaches it, and the dotted paths under which the reference may list it."""

    public: str
    obj: Any
    paths: tuple[str, ...]

    def __str__(self) -> str:
        return self.public


def _import(dotted: str) -> Any:
    module, _, attribute = dotted.rpartition(".")
    return getattr(importlib.import_module(module), attribute)


def _canonical(obj: Any) -> str | None:
    module, qualname = getattr(obj, "__module__", None), getattr(obj, "__qualname__", None)
    if isinstance(module, str) and isinstance(qualname, str) and "<" not in qualname:
        return f"{module}.{qualname}"
    return None


def _ours(obj: Any) -> bool:
    module = getattr(obj, "__module__", None) or ""
    return module.startswith(("dominus_fastapi", "dominus_local"))


def _members(cls: type, *, inherited: bool, private_bases_only: bool = False) -> Iterator[tuple[str, Any]]:
    """The public methods and properties of ``cls``, and with ``inherited`` those of its bases in this project
    (only the private ones, such as ``_ClientBase``, with ``private_bases_only``: public bases are rendered
    on their own)."""
    classes = [cls]
    if inherited:
        classes += [
            base
            for base in cls.__mro__[1:]
            if _ours(base) and not (private_bases_only and not base.__name__.startswith("_"))
        ]
    seen: set[str] = set()
    for klass in classes:
        for name, value in vars(klass).items():
            if name.startswith("_") or name in seen:
                continue
            if isinstance(value, (staticmethod, classmethod)):
                value = value.__func__
            if isinstance(value, property):
                value = value.fget
            elif isinstance(value, functools.cached_property):
                value = value.func
            elif not inspect.isfunction(value):
                continue
            seen.add(name)
            yield name, value


def public_names() -> list[Name]:
    names: dict[str, Name] = {}

    def add(public: str, obj: Any, *paths: str | None) -> None:
        candidates = tuple(dict.fromkeys(path for path in (public, *paths) if path))
        names.setdefault(public, Name(public, obj, candidates))

    exported_classes: list[tuple[str, type]] = []
    for module_name in MODULES_WITH_ALL:
        module = importlib.import_module(module_name)
        for attribute in module.__all__:
            obj = getattr(module, attribute)
            public = f"{module_name}.{attribute}"
            if inspect.isclass(obj) or inspect.isfunction(obj) or (_canonical(obj) and callable(obj)):
                add(public, obj, _canonical(obj))
                if inspect.isclass(obj) and _ours(obj):
                    exported_classes.append((_canonical(obj) or public, obj))
            elif _ours(type(obj)) and not isinstance(obj, type) and type(obj).__module__ != "enum":
                # An instance (the default client ``dominus``) is documented by its class.
                add(public, obj, _canonical(type(obj)))
            else:
                add(public, obj)
    # A member that an exported class inherits from a private base (``Dominus`` and its user view share
    # ``_ClientBase``) is covered where any exported class that has it is rendered.
    rendered_as: dict[int, list[str]] = {}
    for path, cls in exported_classes:
        for member, value in _members(cls, inherited=True, private_bases_only=True):
            rendered_as.setdefault(id(value), []).append(f"{path}.{member}")
    for path, cls in exported_classes:
        for member, value in _members(cls, inherited=True, private_bases_only=True):
            add(f"{path}.{member}", value, *rendered_as[id(value)])
    for namespace, path in NAMESPACES.items():
        cls = _import(path)
        add(path, cls)
        for member, value in _members(cls, inherited=True):
            add(f"{path}.{member}", value, _canonical(value))
        del namespace
    return sorted(names.values(), key=str)


PUBLIC = public_names()


def _static_docstrings(paths: set[str]) -> dict[str, str]:
    """Docstrings as griffe reads them from the source: attributes keep theirs only there."""
    import griffe

    loaded: dict[str, Any] = {}
    found: dict[str, str] = {}
    for path in paths:
        package = path.split(".", 1)[0]
        if package not in loaded:
            loaded[package] = griffe.load(package, search_paths=[str(ROOT)])
        try:
            obj = loaded[package][path.split(".", 1)[1]]
        except (KeyError, griffe.AliasResolutionError):
            continue
        if obj.docstring is not None:
            found[path] = obj.docstring.value
    return found


def _docstring(name: Name) -> str | None:
    """The docstring seen at run time; ``None`` for values (constants, ``Annotated`` aliases), whose docstrings
    only the source holds."""
    obj = name.obj
    if inspect.isclass(obj) or inspect.isfunction(obj):
        return obj.__doc__
    if _ours(obj) and callable(obj):
        return obj.__doc__  # a pytest fixture definition
    if _ours(type(obj)) and type(obj).__module__ != "dominus_fastapi.core.namespaces.base":
        return type(obj).__doc__  # an instance (the default client, a security scheme) is documented by its class
    return None


def test_the_namespace_table_matches_the_client() -> None:
    on_client = {name for name, value in vars(_ClientBase).items() if isinstance(value, functools.cached_property)}
    assert on_client == set(NAMESPACES)
    for name, path in NAMESPACES.items():
        assert vars(_ClientBase)[name].func.__annotations__["return"] == path.rsplit(".", 1)[1], name


def test_the_public_api_is_listed() -> None:
    listed = {str(name) for name in PUBLIC}
    assert "dominus_fastapi.Dominus" in listed
    assert "dominus_fastapi.core.namespaces.auth.AuthNamespace.list_pages" in listed
    assert "dominus_fastapi.core.namespaces.db.DbNamespace.tables" in listed  # inherited from a private base
    assert "dominus_fastapi.testing.dominus_user_client" in listed
    assert "dominus_fastapi.core.client.Dominus.db" in listed  # a namespace, inherited from _ClientBase
    assert "dominus_fastapi.core.client.DominusUserView.as_user" in listed
    assert sum(name.startswith("dominus_fastapi.core.namespaces.auth.AuthNamespace.") for name in listed) > 100


def test_every_public_name_has_a_docstring() -> None:
    runtime = {str(name): _docstring(name) for name in PUBLIC}
    static = _static_docstrings({public for public, doc in runtime.items() if not doc})
    missing = [public for public, doc in runtime.items() if not (doc or static.get(public) or "").strip()]
    assert missing == [], f"{len(missing)} public names have no docstring:\n" + "\n".join(missing)


def read_inventory(path: Path) -> set[str]:
    """The object names of a Sphinx inventory (version 2): four header lines, then zlib-compressed lines."""
    data = path.read_bytes()
    header_end = 0
    for _ in range(4):
        header_end = data.index(b"\n", header_end) + 1
    assert data.startswith(b"# Sphinx inventory version 2")
    lines = zlib.decompress(data[header_end:]).decode().splitlines()
    return {line.split(" ", 1)[0] for line in lines if line.strip()}


def test_every_public_name_is_in_the_reference(built_site: Path) -> None:
    inventory = read_inventory(built_site / "objects.inv")
    missing = [str(name) for name in PUBLIC if not any(path in inventory for path in name.paths)]
    assert missing == [], f"{len(missing)} public names are not rendered by docs/reference/:\n" + "\n".join(missing)


def test_every_namespace_has_its_section(built_site: Path) -> None:
    text = (REFERENCE / "namespaces.md").read_text()
    for name, path in NAMESPACES.items():
        heading = re.search(rf"^## (.+): `{name}`$", text, re.MULTILINE)
        assert heading is not None, f"namespaces.md has no section for `{name}`"
        assert f"::: {path}" in text[heading.end() :].split("\n## ", 1)[0]


def test_the_reference_shows_no_restructuredtext(built_site: Path) -> None:
    """Docstrings keep their Sphinx roles, ``::`` paragraphs and simple tables for editors; the site shows them
    as Markdown (``scripts/griffe_sphinx_roles.py``)."""
    for page in sorted((built_site / "reference").rglob("*.html")):
        html = page.read_text()
        where = page.relative_to(built_site)
        assert ROLE.search(html) is None, f"{where}: {ROLE.search(html)}"
        assert RST_TABLE.search(html) is None, f"{where}: {RST_TABLE.search(html)}"
        assert "::</p>" not in html, where
    # The conversions are real: a role renders its target as code, a simple table as a table.
    fastapi = (built_site / "reference" / "fastapi" / "index.html").read_text()
    assert "<code>PortalSession</code>" in fastapi
    handlers = fastapi[fastapi.index('id="exception-handlers"') :]
    assert "<th>SDK error</th>" in handlers
    assert "<td><code>CircuitOpenError</code></td>" in handlers
