"""The ``run`` and ``example`` sections of the documentation (marked ``<!-- section:NAME:start -->`` in the
README or in a page of ``docs/``, today ``docs/getting-started.md``), checked against the app: the Python block
runs as written, the commands name real options, and the start-up message shown is the one the app prints.
"""

from __future__ import annotations

import ast
import re
import shlex
import tempfile
from pathlib import Path

import pytest

from example_app.__main__ import parse_args, prepare_environment
from example_app.api import router as api_router

ROOT = Path(__file__).resolve().parents[2]


def section(name: str) -> str:
    """The text of the one section ``name``, wherever it is: the README or a page of ``docs/``."""
    start, end = f"<!-- section:{name}:start -->", f"<!-- section:{name}:end -->"
    found = []
    for path in [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]:
        text = path.read_text(encoding="utf-8")
        if start in text:
            found.append(text[text.index(start) + len(start) : text.index(end)])
    assert len(found) == 1, f"section {name!r} found {len(found)} times"
    return found[0]


def blocks(text: str, language: str) -> list[str]:
    return re.findall(rf"^```{language}\n(.*?)^```$", text, flags=re.S | re.M)


async def test_the_python_block_of_the_example_section_runs(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    (code,) = blocks(section("example"), "python")
    for name in ("DOMINUS_BASE_URL", "DOMINUS_LOCAL_SEED_DEMO"):
        monkeypatch.setenv(name, "")  # restored after the test; the block sets them itself
    monkeypatch.delenv("DOMINUS_TOKEN", raising=False)
    monkeypatch.setenv("DOMINUS_LOCAL_BCRYPT_ROUNDS", "4")
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    compiled = compile(code, "docs#example", "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)
    result = eval(compiled, {"__name__": "readme_example"})
    if result is not None:
        await result


def test_the_commands_name_real_options() -> None:
    commands = [line for block in blocks(section("run"), "bash") for line in block.splitlines() if line.strip()]
    run_lines = [line.split("#", 1)[0] for line in commands if line.startswith("./scripts/run")]
    assert len(run_lines) == 3
    for line in run_lines:
        parse_args(shlex.split(line)[1:])  # exits on an unknown option
    assert (ROOT / "scripts" / "run").is_file()
    assert any("python -m example_app" in line for line in commands)


def test_the_start_up_message_is_the_one_printed(tmp_path: Path) -> None:
    (shown,) = blocks(section("run"), "text")
    printed = prepare_environment(parse_args(["--data-dir", str(tmp_path)]), {})
    shown_lines = shown.splitlines()
    assert shown_lines[0].startswith("DOMINUS_BASE_URL is not set: using the embedded backend with the demo data in")
    assert shown_lines[1:] == printed[1:]


def test_the_api_routes_listed_exist() -> None:
    listed = set(re.findall(r"`(?:GET|POST|GET\|POST) (/api/[a-z/]+)", section("example")))
    paths = {route.path for route in api_router.routes}  # type: ignore[attr-defined]
    assert listed and listed <= paths
    assert paths <= listed  # every route is documented
