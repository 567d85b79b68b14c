"""Every ``auth.*`` name of the catalogue exists on the client, and the suite called each one against the server.

The module's name sorts it last in this directory, so the call check runs after the other identity tests have
recorded their calls (see ``conftest.CALLED``).
"""

from __future__ import annotations

import contextlib
import inspect
import json
from pathlib import Path

import pytest

from dominus_fastapi.core.errors import DominusError
from dominus_fastapi.core.namespaces.auth import AuthNamespace
from dominus_local.services import guardian

from .conftest import CALLED, ERROR_TEXTS, LOG_LINES, PSK, SECRETS

HERE = Path(__file__).parent
CATALOGUE = json.loads((HERE.parents[1] / "docs" / "endpoints.json").read_text("utf-8"))
AUTH_NAMES = sorted({name for entry in CATALOGUE for name in entry["python"] if name.startswith("auth.")})


def test_the_catalogue_names_147_auth_methods() -> None:
    assert len(AUTH_NAMES) == 147


@pytest.mark.parametrize("name", AUTH_NAMES)
def test_the_client_has_the_method(name: str) -> None:
    method = getattr(AuthNamespace, name.split(".", 1)[1], None)
    assert method is not None, f"{name} is missing from the client"
    assert inspect.iscoroutinefunction(inspect.unwrap(method)), f"{name} must be a coroutine function"
    assert (inspect.getdoc(method) or "").strip(), f"{name} needs a docstring"
    signature = inspect.signature(inspect.unwrap(method))
    assert signature.return_annotation is not inspect.Signature.empty
    assert all(p.annotation is not inspect.Parameter.empty for p in signature.parameters.values() if p.name != "self")
    if name != "auth.validate_jwt":
        options = {"timeout", "max_retries"}
        assert options <= set(signature.parameters), f"{name} lacks the per-call options"


def test_every_auth_method_was_called_against_the_server(request: pytest.FixtureRequest) -> None:
    modules = {path.name for path in HERE.glob("test_*.py")} - {Path(__file__).name}
    ran = {Path(str(item.fspath)).name for item in request.session.items}
    if not modules <= ran:
        pytest.skip("this check needs the whole tests/identity directory in the run")
    failed = request.session.testsfailed
    missing = [name for name in AUTH_NAMES if name not in CALLED]
    assert not missing, f"never called against the server ({failed} earlier failures): {missing}"


async def test_no_secret_in_any_log_line_or_error(auth: AuthNamespace) -> None:
    """Spec 5.6, 5.8: no password, PSK or token in a log line or an error text, over the whole session.

    Its own calls make sure that secrets of every kind went through this run, including refused ones.
    """
    client = await auth.create_client("scan")
    user = await auth.create_user("scanned", None, password="scan-password-1")
    await auth.mint_jwt(user["id"])
    await auth.regenerate_psk(client["id"])
    for refused in (auth.create_user("scanned2", None, password="tiny"), auth.verify_psk(client["id"], "x" * 64)):
        with contextlib.suppress(DominusError):
            await refused
    assert {PSK, client["psk"], "scan-password-1"} <= SECRETS
    leaks = [(secret[:4] + "...", line[:200]) for line in LOG_LINES for secret in SECRETS if secret in line]
    assert not leaks, leaks
    leaks = [(secret[:4] + "...", text[:200]) for text in ERROR_TEXTS for secret in SECRETS if secret in text]
    assert not leaks, leaks


def test_the_server_serves_every_guardian_endpoint_with_its_flags() -> None:
    served = {(e.method, e.path): e for e in guardian.router.endpoints}
    listed = [entry for entry in CATALOGUE if entry["service"] == "guardian"]
    assert len(listed) == 142 and set(served) == {(entry["method"], entry["path"]) for entry in listed}
    for entry in listed:
        endpoint = served[(entry["method"], entry["path"])]
        assert endpoint.admin and endpoint.auth == "service", entry["path"]
        assert endpoint.safe == entry["safe"], (entry["method"], entry["path"])
        assert endpoint.replay == entry.get("idempotent_replay", True), entry["path"]
