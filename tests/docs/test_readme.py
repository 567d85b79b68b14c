"""The code of the README and of the documentation site (``docs/``), run as written, so that every snippet
stays true.

In the README, the sections named in ``SECTIONS`` are checked; in ``docs/``, every page is checked whole, but
for the pages in ``UNCHECKED_PAGES``.

The convention (also in ``docs/contributing.md``): in the sections checked here, a block fenced
```` ```python ```` is runnable; words after ``python`` in the fence's info string are options:

- ``demo``: the backend starts with the demo data (``DOMINUS_LOCAL_SEED_DEMO=true``);
- ``continued``: the block runs after the previous runnable block, in the same namespace and backend;
- ``pytest``: the block is a pytest test module; it is written to a file and run by pytest in a subprocess,
  with the ``dominus_fastapi.testing`` plugin that the installed package registers.

A block fenced ```` ```py ```` (or ```` ```python fragment ````) is a fragment: it is compiled, not run. Every
fence names its language. Runnable blocks use top-level ``await`` (as ``python -m asyncio`` allows); they show
results with ``print(...)`` or a comment where a reader expects them, and state with ``assert`` what the page
explains. Each group runs from the repository root in an environment without
``DOMINUS_*`` variables (snippets name ``embedded:``, a fresh in-memory backend, themselves), and the default
``dominus`` client is reset before and closed after it. The tables of guards, error statuses, portal
routes and the options of ``setup_dominus`` and ``dominus_lifespan`` (in the pages of ``TABLE_PAGES``), and the
per-call options claim, have tests of their own at the end of this module.
"""

from __future__ import annotations

import ast
import inspect
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

import dominus_fastapi

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
SECTIONS = ("app",)
"""The README sections whose blocks this module runs ("Use it in your app"; the rest of the README links into
``docs/``)."""
DOCS = ROOT / "docs"
UNCHECKED_PAGES = frozenset({"protocol.md", "migration.md"})
"""Pages of ``docs/`` whose blocks are not run here: the wire spec's blocks are wire examples, and the
migration guide's scripts (written for the reference SDK, with ``asyncio.run``) run in ``tests/compat``."""
RUN_OPTIONS = frozenset({"demo", "continued", "pytest", "fragment"})
FENCE = re.compile(r"^```(?P<info>[^`]*)$")


@dataclass
class Block:
    """One fenced code block of the README or of a page of ``docs/``."""

    section: str
    """The README section's name, or the page's path relative to ``docs/``."""
    line: int
    """Line of the block's first code line (1-based), for tracebacks and test ids."""
    language: str
    options: frozenset[str]
    code: str
    path: Path = README


@dataclass
class Group:
    """Runnable blocks that share one namespace and one backend: a block and its ``continued`` followers."""

    blocks: list[Block] = field(default_factory=list)

    @property
    def id(self) -> str:
        return f"{self.blocks[0].section}-line{self.blocks[0].line}"

    @property
    def options(self) -> frozenset[str]:
        return self.blocks[0].options


def section_text(text: str, name: str) -> tuple[int, str]:
    """The text between ``<!-- section:NAME:start -->`` and its end marker, with its first line number."""
    start = f"<!-- section:{name}:start -->"
    end = f"<!-- section:{name}:end -->"
    begin = text.index(start) + len(start)
    return text.count("\n", 0, begin) + 1, text[begin : text.index(end)]


def parse_blocks(text: str, section: str) -> list[Block]:
    """The fenced blocks of one README section, in order."""
    first_line, body = section_text(text, section)
    return parse_body(body, first_line, section, README)


def parse_body(body: str, first_line: int, section: str, path: Path) -> list[Block]:
    """The fenced blocks of ``body`` (whose first line is ``first_line`` of ``path``), in order."""
    blocks: list[Block] = []
    lines = body.split("\n")
    index = 0
    while index < len(lines):
        match = FENCE.match(lines[index])
        if match is None:
            index += 1
            continue
        words = match.group("info").split() or [""]
        start = index + 1
        index = start
        while not lines[index].startswith("```"):
            index += 1
        code = "\n".join(lines[start:index]) + "\n"
        blocks.append(Block(section, first_line + start, words[0], frozenset(words[1:]), code, path))
        index += 1
    return blocks


def readme_blocks() -> list[Block]:
    text = README.read_text(encoding="utf-8")
    return [block for name in SECTIONS for block in parse_blocks(text, name)]


def docs_blocks() -> list[Block]:
    """The blocks of every checked page of the documentation site, page by page."""
    blocks: list[Block] = []
    for page in sorted(DOCS.rglob("*.md")):
        name = page.relative_to(DOCS).as_posix()
        if name not in UNCHECKED_PAGES:
            blocks += parse_body(page.read_text(encoding="utf-8"), 1, name, page)
    return blocks


def runnable_groups(blocks: list[Block]) -> list[Group]:
    groups: list[Group] = []
    for block in blocks:
        if block.language != "python" or "fragment" in block.options:
            continue
        if "continued" in block.options:
            assert groups and groups[-1].blocks[-1].section == block.section, (
                f"{block.path.relative_to(ROOT)}:{block.line}: a 'continued' block needs a runnable block before it "
                "in its section"
            )
            groups[-1].blocks.append(block)
        else:
            groups.append(Group([block]))
    return groups


BLOCKS = readme_blocks() + docs_blocks()
GROUPS = runnable_groups(BLOCKS)
FRAGMENTS = [b for b in BLOCKS if b.language == "py" or (b.language == "python" and "fragment" in b.options)]


def compiled(block: Block) -> Any:
    """The block compiled with top-level ``await`` allowed, its line numbers those of the README."""
    source = "\n" * (block.line - 1) + block.code
    return compile(source, str(block.path), "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT, dont_inherit=True)


@pytest.fixture
def readme_env() -> Iterator[None]:
    """The environment a reader of the README starts from: no Dominus variables at all.

    Snippets name ``embedded:`` themselves (or set ``DOMINUS_BASE_URL``); whatever they set is undone after.
    """
    saved = dict(os.environ)
    for name in list(os.environ):
        if name.startswith(("DOMINUS_", "CB_")):
            del os.environ[name]
    # Cost only: bcrypt checks stay real, at the lowest cost, as in the testing plugin.
    os.environ["DOMINUS_LOCAL_BCRYPT_ROUNDS"] = saved.get("DOMINUS_LOCAL_BCRYPT_ROUNDS", "4")
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


def test_sections_have_runnable_blocks() -> None:
    """Each checked section is present and its fences use the documented languages and options."""
    for name in SECTIONS:
        assert [b for b in BLOCKS if b.section == name and b.language == "python"], f"no python block in {name}"
    for block in BLOCKS:
        assert block.language in ("python", "py", "bash", "text", "toml", "ini", "yaml", "json", "html", "http"), (
            f"{block.path.relative_to(ROOT)}:{block.line}: fence language {block.language!r}: "
            "name one (python, py, bash, text, ...)"
        )
        unknown = block.options - RUN_OPTIONS
        assert not unknown, f"{block.path.relative_to(ROOT)}:{block.line}: unknown fence options {sorted(unknown)}"


@pytest.mark.parametrize("block", FRAGMENTS, ids=lambda b: f"{b.section}-line{b.line}")
def test_fragment_compiles(block: Block) -> None:
    compiled(block)


@pytest.mark.parametrize("group", GROUPS, ids=lambda g: g.id)
async def test_snippet(group: Group, readme_env: None, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(ROOT)  # snippets run from the root of a clone
    if "pytest" in group.options:
        run_pytest_module(group, tmp_path)
        return
    if "demo" in group.options:
        os.environ["DOMINUS_LOCAL_SEED_DEMO"] = "true"
    monkeypatch.setattr(dominus_fastapi, "_default_client", None)
    namespace: dict[str, Any] = {"__name__": "readme_snippet"}
    try:
        for block in group.blocks:
            result = eval(compiled(block), namespace)
            if inspect.isawaitable(result):
                await result
    finally:
        client = dominus_fastapi._default_client
        if client is not None:
            await client.aclose()
    # A snippet that opens a client also closes it.
    for name, value in namespace.items():
        if isinstance(value, dominus_fastapi.Dominus):
            assert value.closed, f"{group.id}: the client {name!r} was left open"


def run_pytest_module(group: Group, tmp_path: Path) -> None:
    """Write the block(s) to a test module and run pytest on it, as a user of the plugin would."""
    module = tmp_path / "test_readme_example.py"
    module.write_text("".join(block.code for block in group.blocks), encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-W", "error"]
    command += ["-o", "asyncio_mode=auto", "-o", "asyncio_default_fixture_loop_scope=function", str(module)]
    done = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, f"{group.id}:\n{done.stdout}\n{done.stderr}"
    assert re.search(r"\b\d+ passed\b", done.stdout), done.stdout
    assert not re.search(r"\b(failed|skipped|error)\b", done.stdout.splitlines()[-1]), done.stdout


# --- the tables ----------------------------------------------------------------------------------------------

TABLE_PAGES = {
    "app options": "fastapi/index.md",
    "guards": "fastapi/guards.md",
    "error statuses": "fastapi/errors.md",
    "portal routes": "fastapi/portal-router.md",
}
"""The pages of ``docs/`` whose tables are checked against the code, each under a ``##`` heading named in its
test."""


def table_rows(section: str, heading: str) -> list[list[str]]:
    """The body rows of the first table under ``## heading`` in the page ``section`` (a path under ``docs/``),
    as lists of cell texts."""
    body = (DOCS / section).read_text(encoding="utf-8")
    after = body[body.index(f"\n## {heading}\n") + 1 :]
    rows: list[list[str]] = []
    for line in after.split("\n")[1:]:
        if line.startswith("## "):
            break
        if line.startswith("|") and not set(line) <= set("|- "):
            rows.append([cell.strip() for cell in line.strip("|").split("|")])
    assert rows, f"no table under {heading!r}"
    return rows[1:]  # without the header row


def routes_of(cell: str) -> set[tuple[str, str]]:
    """``(method, path)`` pairs of a cell such as ```GET`/`PUT /profile`, `POST /logout```."""
    found: set[tuple[str, str]] = set()
    methods: list[str] = []
    for token in re.findall(r"`([^`]+)`", cell):
        parts = token.split()
        if len(parts) == 1:
            methods.append(parts[0])
            continue
        for method in [*methods, parts[0]]:
            found.add((method, parts[1]))
        methods = []
    return found


def test_portal_router_table_lists_every_route() -> None:
    from fastapi.routing import APIRoute

    from dominus_fastapi import get_portal_router

    documented = set().union(*(routes_of(row[0]) for row in table_rows(TABLE_PAGES["portal routes"], "The routes")))
    router = get_portal_router("", registration_tenants=["acme"])  # every route, sign-up included
    actual = {
        (method, route.path) for route in router.routes if isinstance(route, APIRoute) for method in route.methods or ()
    }
    assert documented == actual


def test_error_status_table_matches_the_handlers() -> None:
    import dominus_fastapi as package
    from dominus_fastapi.handlers import error_response

    rows = table_rows(TABLE_PAGES["error statuses"], "The error-status table")
    covered: set[str] = set()
    for cell, status_cell in rows:
        status = int(re.match(r"\d+", status_cell).group())  # type: ignore[union-attr]
        for name in re.findall(r"`(\w+)`", cell):
            cls = getattr(package, name)
            covered.add(name)
            upstream = 503 if f"503 `{name}`" in cell else (500 if f"other `{name}`" in cell else None)
            error = (
                cls("failed", status_code=upstream, retry_after=5)
                if "retry_after" in inspect.signature(cls).parameters
                else cls("failed", status_code=upstream)
            )
            response = error_response(error)
            assert response.status_code == status, (name, cell)
            if "Retry-After" in status_cell:
                assert response.headers["retry-after"] == "5", name
            if "WWW-Authenticate" in status_cell:
                assert response.headers["www-authenticate"] == "Bearer", name
        if "413 / 422" in status_cell:
            for kept in (413, 422):
                assert error_response(package.ValidationError("too big", status_code=kept)).status_code == kept
    errors = {name for name in package.__all__ if name.endswith("Error") and name != "DominusError"}
    assert errors <= covered, f"missing from the table: {sorted(errors - covered)}"


def documented_options(heading: str) -> set[str]:
    """The option names in the first cell of each row of the table under ``## heading``."""
    rows = table_rows(TABLE_PAGES["app options"], heading)
    return {name for row in rows for name in re.findall(r"`\**(\w+)`", row[0].split("(to the middleware)")[0])}


def test_setup_dominus_table_lists_every_option() -> None:
    """Every keyword of ``setup_dominus``, and every option it passes on to the middleware, has a row."""
    from dominus_fastapi import setup_dominus
    from dominus_fastapi.middleware import PortalSessionMiddleware

    own = set(inspect.signature(setup_dominus).parameters) - {"app", "middleware_options"}
    # The middleware's own keywords that setup_dominus does not take itself (the cookie ones it sets from its
    # own, `config` it builds, `cookie_path` it leaves at "/").
    passed_on = set(inspect.signature(PortalSessionMiddleware).parameters) - own - {"app", "config", "cookie_path"}
    assert passed_on == {"csrf", "leeway", "client", "clock"}
    assert documented_options("Every option of `setup_dominus`") == own | passed_on


def test_dominus_lifespan_table_lists_every_argument() -> None:
    from dominus_fastapi import dominus_lifespan

    arguments = set(inspect.signature(dominus_lifespan).parameters)
    assert documented_options("The lifespan: `dominus_lifespan`") == arguments


NAMESPACES = [
    "secrets",
    "db",
    "secure",
    "open",
    "redis",
    "files",
    "auth",
    "ddl",
    "logs",
    "portal",
    "courier",
    "health",
    "admin",
]


async def test_every_method_takes_the_per_call_options() -> None:
    """The claim of ``docs/services/client.md`` (Resilience): every method of the client and of its namespaces
    takes ``timeout=`` and ``max_retries=``."""
    client = dominus_fastapi.Dominus(base_url="http://127.0.0.1:9", token="unused")
    try:
        methods = [getattr(client, name) for name in ("get", "upsert", "get_public_key", "validate_jwt", "mint_jwt")]
        for name in NAMESPACES:
            namespace = getattr(client, name)
            methods += [
                getattr(namespace, attr)
                for attr in dir(namespace)
                if not attr.startswith("_") and inspect.iscoroutinefunction(getattr(namespace, attr))
            ]
        assert len(methods) > 200
        lacking = [
            m.__qualname__ for m in methods if not {"timeout", "max_retries"} <= set(inspect.signature(m).parameters)
        ]
        assert lacking == []
    finally:
        await client.aclose()


# --- the guards table, against a real app and backend (fixtures of the dominus_fastapi.testing plugin) -----


def guard_app() -> Any:
    """One route per guard of the guards table, each set up so that a signed-in user is refused."""
    from fastapi import Depends, FastAPI

    from dominus_fastapi import (
        dominus_lifespan,
        require_jwt,
        require_page_access,
        require_psk,
        require_role,
        require_scopes,
        setup_dominus,
    )

    app = FastAPI(lifespan=dominus_lifespan())
    setup_dominus(app)
    guards = {
        "require_jwt": require_jwt(subject_type="client"),
        "require_scopes": require_scopes("nobody.has"),
        "require_psk": require_psk(scopes=("nobody.has",)),
        "require_page_access": require_page_access("/guarded", redirect_to="/login"),
        "require_role": require_role("nobody-has"),
    }
    for name, guard in guards.items():

        async def endpoint() -> dict[str, str]:
            return {"passed": "yes"}

        app.add_api_route(f"/{name}", endpoint, dependencies=[Depends(guard)])
    return app


@pytest.fixture
def dominus_app() -> Any:
    return guard_app()


def answers(cell: str) -> set[tuple[int, str]]:
    return {(int(status), code) for status, code in re.findall(r"(\d{3}) `(\w+)`", cell)}


async def test_guard_table_matches_the_guards(
    dominus: dominus_fastapi.Dominus, dominus_app_client: Any, dominus_user_client: Any
) -> None:
    page = await dominus.auth.create_page("/guarded", "Guarded")
    scope = await dominus.auth.create_scope("guarded.view", "Open the guarded page")
    await dominus.auth.add_page_scopes(page["id"], [scope["id"]])
    user = await dominus_user_client(tenants=["acme"])
    machine = await dominus.auth.create_client("readme-machine")

    rows = table_rows(TABLE_PAGES["guards"], "The guards")
    assert len(rows) == 5
    for _, here, anonymous_cell, refused_cell in rows:
        name = re.match(r"`(\w+)\(", here).group(1)  # type: ignore[union-attr]
        path = f"/{name}"
        anonymous = await dominus_app_client.get(path)
        assert {(anonymous.status_code, anonymous.json()["code"])} == answers(anonymous_cell), name
        if name == "require_psk":
            refused = [
                await dominus_app_client.get(path, headers={"X-Dominus-PSK": "not-a-psk"}),
                await dominus_app_client.get(path, headers={"X-Dominus-PSK": machine["psk"]}),
            ]
        else:
            refused = [await user.get(path)]
        assert {(r.status_code, r.json()["code"]) for r in refused} == answers(refused_cell), name

    # "With redirect_to=, an anonymous browser gets a 303 to the sign-in page instead of the 401."
    browser = await dominus_app_client.get("/require_page_access", headers={"Accept": "text/html"})
    assert browser.status_code == 303
    assert browser.headers["location"] == "/login?next=/require_page_access"
