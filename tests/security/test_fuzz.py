"""Property-based fuzzing against a real in-process ``dominus_local``: no 5xx, no unhandled exception.

- **Framing**: arbitrary bytes, base64 of arbitrary text, base64 of JSON that is not an object, JSON bombs
  (deep nesting, huge numbers, long strings, many keys) on a data endpoint.
- **Every endpoint of ``docs/endpoints.json``**: its body (or query) fields filled with arbitrary JSON values,
  its path parameters with hostile or random text, sent with the credential its auth kind needs.

A case passes when the answer is a framed envelope with a status below 500 (501 ``not_implemented`` is a
legitimate answer of this server for features it does not offer), a ``validation_failed`` answer names the
field in its details, and nothing was logged as unhandled. One
server serves the whole module; injected faults that a fuzzed ``/api/admin/faults`` call may switch on are
switched off after every example. ``derandomize=True`` keeps the case counts the same from run to run.
"""

from __future__ import annotations

import base64
import json
import logging
import secrets
import urllib.parse
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio
from asgi_lifespan import LifespanManager
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import SecretStr

from dominus_fastapi import Dominus
from dominus_fastapi.core import wire
from dominus_fastapi.core.transport import DropAwareASGITransport
from dominus_local import LocalSettings, create_app
from tests.conftest import LOCAL_ORIGIN, make_fast
from tests.reliability.ledger import SCALE, TALLY, WATCH

pytestmark = pytest.mark.asyncio(loop_scope="module")

ENDPOINTS: list[dict[str, Any]] = json.loads(
    (Path(__file__).resolve().parents[2] / "docs" / "endpoints.json").read_text()
)
FUZZED = [e for e in ENDPOINTS if e["path"].startswith(("/api/", "/jwt/"))]
PASSWORD = WATCH.secret("fuzz-user-password-1")
EXAMPLES = 6 * SCALE
FUZZ_SETTINGS = settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large],
)


class Fuzzed:
    """The module's server, its credentials and a raw HTTP client."""

    def __init__(self, app: Any, local: Any, psk: str, service: str, http: httpx.AsyncClient) -> None:
        self.app, self.local, self.psk, self.service, self.http = app, local, psk, service, http
        self.unhandled: list[str] = []

    async def user_token(self) -> str:
        response = await self.http.post(
            "/api/portal/auth/login",
            content=wire.encode_body({"username": "fuzzy", "password": PASSWORD}),
            headers={"Authorization": f"Bearer {self.service}"},
        )
        token = str(wire.parse_response_text(response.content)["data"]["access_token"])
        return WATCH.secret(token)


class _Unhandled(logging.Handler):
    def __init__(self, sink: list[str]) -> None:
        super().__init__(logging.ERROR)
        self.sink = sink

    def emit(self, record: logging.LogRecord) -> None:
        if record.exc_info is not None:
            self.sink.append(record.getMessage())


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def fuzzed() -> AsyncIterator[Fuzzed]:
    psk = WATCH.secret(secrets.token_hex(32))
    app = create_app(LocalSettings(psk=SecretStr(psk), bcrypt_rounds=4))
    async with LifespanManager(app) as manager:
        client = Dominus(
            base_url=LOCAL_ORIGIN,
            token=psk,
            http_client=httpx.AsyncClient(transport=DropAwareASGITransport(app=manager.app)),
        )
        make_fast(client)
        await client.auth.add_user("fuzzy", PASSWORD, email="fuzzy@example.com")
        service = WATCH.secret(await (await client._transport.token_cache()).get())
        await client._transport.http.aclose()
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=manager.app), base_url=LOCAL_ORIGIN) as http:
            state = Fuzzed(manager.app, app, psk, service, http)
            handler = _Unhandled(state.unhandled)
            logging.getLogger("dominus_local").addHandler(handler)
            try:
                yield state
            finally:
                logging.getLogger("dominus_local").removeHandler(handler)


def _acceptable(response: httpx.Response) -> tuple[bool, str]:
    body = wire.parse_response_text(response.content)
    framed = isinstance(body, dict) and body.get("success") is (response.status_code == 200)
    code = body.get("code") if isinstance(body, dict) else None
    ok = framed and (response.status_code < 500 or response.status_code == 501)
    if ok and code == "validation_failed":
        # Bad input gets an answer that names the field (spec 4.1: details.field, or details.errors).
        details = body.get("details") or {}
        named = details.get("field") or any(e.get("field") for e in details.get("errors", [])) or details.get("missing")
        ok = bool(named)
    return ok, f"{response.status_code} {code}"


async def _check(fuzzed: Fuzzed, suite: str, what: str, response: httpx.Response) -> None:
    fuzzed.local.faults.replace()  # a fuzzed /api/admin/faults call must not leak into the next example
    ok, outcome = _acceptable(response)
    unhandled = list(fuzzed.unhandled)
    fuzzed.unhandled.clear()
    ok = ok and not unhandled
    TALLY.record(suite, ok, f"{what}: {outcome} {unhandled[:1]}")
    assert ok, f"{what}: {outcome} {unhandled[:1]} {response.content[:300]!r}"


# --- framing ----------------------------------------------------------------------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=50),
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=10), inner, max_size=5),
    max_leaves=20,
)
plausible_strings = st.one_of(
    st.sampled_from(
        [
            "public",
            "orders",
            "general",
            "admin",
            "acme",
            "/dashboard",
            "user@example.com",
            "00000000-0000-4000-8000-000000000000",
            "a/b/c.txt",
            "text",
            "INTEGER",
            "DESC",
            "x" * 80,
            "",
            " ",
            "ZmlsZQ==",
        ]
    ),
    st.from_regex(r"[a-z][a-z0-9_]{0,20}", fullmatch=True),
    st.text(max_size=30),
)
plausible_values = st.one_of(
    plausible_strings,
    st.integers(-(2**63), 2**63),
    st.booleans(),
    st.none(),
    st.lists(plausible_strings, max_size=3),
    st.dictionaries(plausible_strings, plausible_strings | st.integers(), max_size=3),
    st.lists(st.dictionaries(plausible_strings, plausible_strings | st.integers(), max_size=3), max_size=2),
)
"""Values shaped like the fields' real ones, so that requests get past type checks into the handlers."""
field_values = json_values | plausible_values | plausible_values

bodies = st.one_of(
    st.binary(max_size=300),
    st.text(max_size=200).map(
        lambda t: base64.b64encode(t.encode("utf-8", "surrogatepass")).decode("ascii", "replace").encode()
    ),
    st.binary(max_size=200).map(base64.b64encode),
    json_values.map(lambda v: base64.b64encode(json.dumps(v).encode())),
    st.integers(1, 3000).map(lambda n: base64.b64encode(("[" * n + "]" * n).encode())),
    st.integers(1, 3000).map(lambda n: base64.b64encode(('{"a":' * n + "1" + "}" * n).encode())),
)


@settings(FUZZ_SETTINGS, max_examples=200 * SCALE)
@given(content=bodies, path=st.sampled_from(["/api/warden/secrets", "/api/scribe/data/public/t/query", "/jwt/mint"]))
async def test_framing_never_fails_the_server(fuzzed: Fuzzed, content: bytes, path: str) -> None:
    token = fuzzed.psk if path == "/jwt/mint" else fuzzed.service
    response = await fuzzed.http.post(path, content=content, headers={"Authorization": f"Bearer {token}"})
    await _check(fuzzed, "fuzzing: framing", path, response)


BOMBS = {
    "nesting 100 000 deep (arrays)": "[" * 100_000 + "]" * 100_000,
    "nesting 100 000 deep (objects)": '{"a":' * 100_000 + "1" + "}" * 100_000,
    "unclosed nesting": "[" * 500_000,
    "a 100 000-digit integer": '{"action": "get", "key": ' + "9" * 100_000 + "}",
    "an exponent overflow": '{"action": "get", "key": 1e999999}',
    "a 4 MiB string": json.dumps({"action": "get", "key": "k" * (4 << 20)}),
    "200 000 keys": "{" + ",".join(f'"k{i}":{i}' for i in range(200_000)) + "}",
    "the same key 100 000 times": "{" + ",".join('"action":"list"' for _ in range(100_000)) + "}",
    "lone surrogate escape": '{"action": "get", "key": "\\ud800"}',
    "NUL in a key": '{"action": "get", "key": "a\\u0000b"}',
    "NaN": '{"action": "get", "key": NaN}',
    "Infinity": '{"action": "list", "prefix": Infinity}',
}


@pytest.mark.parametrize("name", list(BOMBS))
async def test_json_bombs_are_refused_cleanly(fuzzed: Fuzzed, name: str) -> None:
    content = base64.b64encode(BOMBS[name].encode())
    for path in ("/api/warden/secrets", "/api/scribe/data/public/t/insert", "/api/whisperer/set"):
        response = await fuzzed.http.post(path, content=content, headers={"Authorization": f"Bearer {fuzzed.service}"})
        await _check(fuzzed, "fuzzing: framing", f"{name} on {path}", response)


async def test_non_utf8_and_bad_base64(fuzzed: Fuzzed) -> None:
    cases = {
        "latin-1 JSON": base64.b64encode('{"action": "get", "key": "caf\xe9"}'.encode("latin-1")),
        "UTF-16 JSON": base64.b64encode('{"action": "list"}'.encode("utf-16")),
        "base64url alphabet": base64.urlsafe_b64encode(b'{"action": "list", "prefix": "\xff\xfe"}'),
        "stray characters": b"e30=*&^%",
        "padding in the middle": b"e3=0=",
        "raw JSON, not base64": b'{"action": "list"}',
        "overlong UTF-8": base64.b64encode(b'{"action": "get", "key": "\xc0\xaf"}'),
        "a BOM": base64.b64encode(b'\xef\xbb\xbf{"action": "list"}'),
    }
    for name, content in cases.items():
        response = await fuzzed.http.post(
            "/api/warden/secrets", content=content, headers={"Authorization": f"Bearer {fuzzed.service}"}
        )
        await _check(fuzzed, "fuzzing: framing", name, response)


# --- every endpoint's fields ------------------------------------------------------------------------------------

path_values = st.one_of(
    st.sampled_from(
        [
            "public",
            "00000000-0000-4000-8000-000000000000",
            "..",
            "../../etc/passwd",
            "%2e%2e%2f",
            "x' OR '1'='1",
            'a"; DROP TABLE x; --',
            "a" * 300,
            "\u202e",
            "admin",
            "_reserved",
            "0",
            "-1",
        ]
    ),
    st.text(min_size=1, max_size=40),
)


def _fill_path(template: str, values: list[str]) -> str:
    out, index = template, 0
    while "{" in out:
        start, end = out.index("{"), out.index("}")
        value = values[index % len(values)] if values else "x"
        out = out[:start] + urllib.parse.quote(value, safe="") + out[end + 1 :]
        index += 1
    return out


def _ident(endpoint: dict[str, Any]) -> str:
    return f"{endpoint['method']} {endpoint['path']}" + (f" {endpoint['match']}" if endpoint.get("match") else "")


@pytest.mark.parametrize("endpoint", FUZZED, ids=_ident)
@FUZZ_SETTINGS
@given(data=st.data())
async def test_every_endpoint_survives_arbitrary_fields(
    fuzzed: Fuzzed, endpoint: dict[str, Any], data: st.DataObject
) -> None:
    top: dict[str, Any] = {}
    nested: dict[str, dict[str, Any]] = {}
    for name in endpoint["request"]:
        head, _, sub = name.rstrip("?").partition(".")
        if sub:
            nested.setdefault(head, {})[sub] = field_values
        else:
            top[head] = field_values
    for head, subs in nested.items():
        top[head] = st.fixed_dictionaries({}, optional=subs) | field_values
    values = data.draw(st.fixed_dictionaries({}, optional=top), "fields")
    extra = data.draw(st.dictionaries(st.text(max_size=12), json_values, max_size=2), "unknown fields")
    path_args = data.draw(st.lists(path_values, min_size=1, max_size=4), "path parameters")
    body = {**extra, **values, **endpoint.get("match", {})}
    token: str | None
    if endpoint["auth"] == "psk":
        token = fuzzed.psk
    elif endpoint["auth"] == "user":
        token = await fuzzed.user_token()
    elif endpoint["auth"] == "none":
        token = None
    else:
        token = fuzzed.service
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    path = _fill_path(endpoint["path"], path_args)
    if endpoint["method"] == "GET":
        params = {k: v if isinstance(v, str) else json.dumps(v) for k, v in body.items()}
        response = await fuzzed.http.get(path, params=params, headers=headers)
    else:
        response = await fuzzed.http.request(endpoint["method"], path, content=wire.encode_body(body), headers=headers)
    await _check(fuzzed, "fuzzing: endpoint fields", _ident(endpoint), response)
