"""The reference SDK's README, run as its users wrote it, on this distribution.

Each script in ``scripts/`` is one section of the reference README (dominus v2.x) in its own style:
``os.environ["DOMINUS_TOKEN"] = "your-psk-token"``, ``from dominus import dominus``, ``async def main()``,
``asyncio.run(main())``. The calls are the README's, with values taken from the demo data (user ``demo``,
tenants ``acme`` and ``globex``, page ``/dashboard/admin/users``) so that they succeed, and ``assert`` lines
that state what each call gives back. A script runs in its own Python process, as a script does, with
warnings as errors, on the embedded backend with the demo data (``DOMINUS_BASE_URL=embedded:///<tmp>``), and
the scripts that call ``asyncio.run`` more than once also against a ``dominus-local serve`` subprocess.

``ALLOWED_DIFFERENCES`` is the list of differences from the reference SDK that these tests accept; it must
be the list of ``docs/migration.md``, and each entry names the test that shows it.
"""

from __future__ import annotations

import os
import re
import secrets
import subprocess
import sys
from pathlib import Path

import pytest

import dominus
from tests.servers import LocalServer

ROOT = Path(__file__).resolve().parents[2]
SCRIPTS = Path(__file__).parent / "scripts"
MIGRATION = ROOT / "docs" / "migration.md"
PLACEHOLDER = '"your-psk-token"'
SCRIPT_TIMEOUT = 240.0

ALLOWED_DIFFERENCES: dict[str, str] = {
    "portal-stateless-client": "tests/compat/test_portal_model.py::test_plain_client_never_answers_for_the_service",
    "portal-remembered-session": "tests/compat/test_reference_readme.py::test_readme_section[user_authentication]",
    "settings-at-first-use": "tests/compat/test_reference_readme.py::test_readme_section[quick_start]",
    "event-loops": "tests/compat/test_reference_readme.py::test_two_event_loops_over_http",
    "error-classes": "tests/compat/test_reference_readme.py::test_readme_section[health_and_errors]",
    "logs-data-alias": "tests/compat/test_reference_readme.py::test_readme_section[structured_logging]",
    "embedded-download-url": "tests/compat/test_reference_readme.py::test_readme_section[file_storage]",
    "embedded-psk": "tests/compat/test_embedded_startup.py::test_short_token_fails_at_once_with_a_typed_error",
    "checked-before-sending": "tests/compat/test_differences.py::test_limits_are_checked_before_sending",
    "setnx-truthiness": "tests/compat/test_reference_readme.py::test_readme_section[redis_caching]",
    "upsert-creates": "tests/compat/test_reference_readme.py::test_readme_section[secrets_management]",
    "open-execute-params": "tests/compat/test_differences.py::test_open_execute_binds_its_parameters",
    "hosts-and-proxies": "tests/compat/test_differences.py::test_the_base_url_is_the_gateway_too",
    "not-carried-over": "tests/compat/test_differences.py::test_what_is_not_carried_over_is_absent",
    "package-name": "tests/compat/test_differences.py::test_the_dominus_package_ships_in_the_wheel",
}
"""Id (as in docs/migration.md) -> the test that shows the difference."""

SECTIONS = [
    "quick_start",
    "secrets_management",
    "database_operations",
    "redis_caching",
    "file_storage",
    "structured_logging",
    "guardian_auth",
    "schema_management",
    "user_authentication",
    "email_delivery",
    "health_and_errors",
    "two_event_loops",
]


def script_env(base_url: str) -> dict[str, str]:
    """The environment of a script: no SDK settings of the test run (a script names its token itself), the
    backends the test run uses (``DOMINUS_LOCAL_*``), and the demo data."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DOMINUS_", "CB_", "PYTEST_"))}
    env.update({k: v for k, v in os.environ.items() if k.startswith("DOMINUS_LOCAL_")})
    env["DOMINUS_BASE_URL"] = base_url
    env["DOMINUS_LOCAL_SEED_DEMO"] = "true"
    env["DOMINUS_LOCAL_BCRYPT_ROUNDS"] = "4"
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    return env


def run_script(name: str, tmp_path: Path, *, base_url: str, token: str) -> str:
    """Run ``scripts/<name>.py`` with ``token`` in place of the README's placeholder; its output on success."""
    source = (SCRIPTS / f"{name}.py").read_text(encoding="utf-8")
    assert source.count(PLACEHOLDER) == 1, f"{name}: the script sets DOMINUS_TOKEN once, as the README does"
    script = tmp_path / f"{name}.py"
    script.write_text(source.replace(PLACEHOLDER, repr(token)), encoding="utf-8")
    result = subprocess.run(
        [sys.executable, "-W", "error", str(script)],
        cwd=tmp_path,
        env=script_env(base_url),
        capture_output=True,
        text=True,
        timeout=SCRIPT_TIMEOUT,
        check=False,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, f"{name} failed:\n{output}"
    assert result.stdout.strip().splitlines()[-1] == "ok", output
    assert token not in output
    return output


@pytest.mark.slow
@pytest.mark.parametrize("name", SECTIONS)
def test_readme_section(name: str, tmp_path: Path) -> None:
    """Each section of the reference README, on the embedded backend with the demo data in a directory."""
    data_dir = tmp_path / "data"
    run_script(name, tmp_path, base_url=f"embedded://{data_dir}", token=secrets.token_hex(32))


@pytest.mark.slow
def test_two_event_loops_over_http(tmp_path: Path) -> None:
    """Three ``asyncio.run`` calls on the module-level client against ``dominus-local serve``: the pool of an
    ended loop is not reused (no ``Event loop is closed``) and ``aclose()`` does not end the object."""
    with LocalServer(env={"DOMINUS_LOCAL_SEED_DEMO": "true"}, startup_timeout=90.0) as server:
        assert server.psk is not None
        run_script("two_event_loops", tmp_path, base_url=server.url, token=server.psk)
        run_script("quick_start", tmp_path, base_url=server.url, token=server.psk)


def migration_ids() -> list[str]:
    """The ids of the differences table of docs/migration.md, in order."""
    text = MIGRATION.read_text(encoding="utf-8")
    table = text[text.index("## Differences") :]
    return re.findall(r"^\| `([a-z-]+)` \|", table, flags=re.MULTILINE)


def test_the_allowed_differences_are_the_migration_pages() -> None:
    assert migration_ids() == list(ALLOWED_DIFFERENCES)


def test_each_allowed_difference_names_a_test_that_exists() -> None:
    for difference, node in ALLOWED_DIFFERENCES.items():
        path, _, name = node.partition("::")
        function, _, param = name.partition("[")
        source = (ROOT / path).read_text(encoding="utf-8")
        assert f"def {function}(" in source, f"{difference}: {node} does not exist"
        if param:
            assert param.rstrip("]") in SECTIONS, f"{difference}: no script {param}"


def test_every_script_is_run() -> None:
    assert sorted(p.stem for p in SCRIPTS.glob("*.py")) == sorted(SECTIONS)


def test_the_package_exports_the_reference_names() -> None:
    """The module-level object and the twelve error classes, under the reference SDK's names."""
    import dominus.errors as reference_errors
    import dominus_fastapi

    for name in dominus.__all__:
        assert getattr(dominus, name) is not None
    errors = [
        "DominusError",
        "AuthenticationError",
        "AuthorizationError",
        "NotFoundError",
        "ValidationError",
        "ConflictError",
        "ServiceError",
        "SecureTableError",
        "DominusConnectionError",
        "DominusTimeoutError",
        "RateLimitError",
        "CircuitOpenError",
    ]
    for name in errors:
        assert getattr(dominus, name) is getattr(dominus_fastapi, name)
    assert reference_errors.TimeoutError is dominus.DominusTimeoutError
    assert reference_errors.ConnectionError is dominus.DominusConnectionError
    assert isinstance(dominus.dominus, dominus.Dominus)
    assert dominus.dominus.remembers_login and not dominus_fastapi.dominus.remembers_login
