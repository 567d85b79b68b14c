"""``@cached`` endpoints on a real Whisperer: hits, tag and prefix invalidation, tenant and user separation,
TTL bounds, and answers that survive a cache that is down."""

from __future__ import annotations

from collections import Counter
from typing import Any

import httpx
import pytest
from fastapi import FastAPI, Request

from dominus_fastapi import (
    CurrentTenant,
    Dominus,
    ResponseCache,
    TenantData,
    ValidationError,
    cached,
    dominus_lifespan,
    setup_dominus,
)
from dominus_fastapi.caching import APP_CACHE_CATEGORY, CACHE_HEADER
from dominus_fastapi.deps import DominusDep
from dominus_fastapi.testing import UserFactory


def build_app() -> FastAPI:
    app = FastAPI(lifespan=dominus_lifespan(max_retries=0))
    setup_dominus(app)
    runs: Counter[str] = Counter()
    app.state.runs = runs

    @app.get("/notes")
    @cached(ttl=300, tags=["notes"])
    async def notes(data: TenantData, tenant: CurrentTenant) -> list[str]:
        runs[f"notes:{tenant.slug}"] += 1
        found = await data.redis.get("notes-source")
        return list(found["value"]) if found["found"] else []

    @app.post("/notes")
    async def add_note(title: str, data: TenantData) -> dict[str, bool]:
        found = await data.redis.get("notes-source")
        await data.redis.set("notes-source", [*(found["value"] if found["found"] else []), title], ttl=600)
        await data.cache.invalidate("notes")
        return {"ok": True}

    @app.get("/notes/{note_id}")
    @cached(ttl=300)
    def note(note_id: int, request: Request) -> dict[str, int]:
        runs["note"] += 1
        return {"id": note_id}

    @app.post("/purge")
    async def purge(data: TenantData, prefix: str) -> dict[str, int]:
        return {"deleted": await data.cache.invalidate_prefix(prefix)}

    @app.get("/search")
    @cached(ttl=60)
    async def search(request: Request, tenant: CurrentTenant) -> dict[str, Any]:
        runs["search"] += 1
        return {"query": sorted(request.query_params.multi_items())}

    @app.get("/mine")
    @cached(ttl=120, per="user")
    async def mine(request: Request) -> dict[str, str]:
        runs["mine"] += 1
        return {"user": request.user.id}

    @app.get("/catalog")
    @cached(ttl=3600, per="app", tags=["catalog"])
    async def catalog() -> dict[str, int]:
        runs["catalog"] += 1
        return {"version": runs["catalog"]}

    @app.post("/catalog/refresh")
    async def refresh(client: DominusDep) -> dict[str, bool]:
        await ResponseCache.for_app(client).invalidate("catalog")
        return {"ok": True}

    return app


@pytest.fixture
def dominus_app() -> FastAPI:
    return build_app()


def _state(response: httpx.Response) -> str:
    return response.headers[CACHE_HEADER]


async def test_second_read_is_a_hit_and_a_write_invalidates_the_tag(
    dominus_app: FastAPI, dominus_user_client: UserFactory
) -> None:
    alice = await dominus_user_client(tenants=["alpha"])
    runs = dominus_app.state.runs
    first = await alice.get("/notes")
    assert (first.json(), _state(first)) == ([], "miss")
    second = await alice.get("/notes")
    assert (second.json(), _state(second)) == ([], "hit")
    assert runs["notes:alpha"] == 1

    await alice.post("/notes", params={"title": "plan"})
    third = await alice.get("/notes")
    assert (third.json(), _state(third)) == (["plan"], "miss")
    assert _state(await alice.get("/notes")) == "hit"
    assert runs["notes:alpha"] == 2


async def test_tenants_never_share_entries_or_invalidations(
    dominus: Dominus, dominus_app: FastAPI, dominus_user_client: UserFactory
) -> None:
    alice = await dominus_user_client(tenants=["alpha"])
    bob = await dominus_user_client(tenants=["beta-co"])
    await bob.post("/notes", params={"title": "beta secret"})
    assert (await bob.get("/notes")).json() == ["beta secret"]
    from_alice = await alice.get("/notes")
    assert (from_alice.json(), _state(from_alice)) == ([], "miss")  # same path, her own entry
    assert (await bob.get("/notes")).headers[CACHE_HEADER] == "hit"

    await alice.post("/notes", params={"title": "alpha plan"})  # invalidates alpha's "notes" only
    assert _state(await bob.get("/notes")) == "hit"
    assert (await alice.get("/notes")).json() == ["alpha plan"]

    alpha_keys = (await dominus.redis.list(prefix="cache:", category="tenant-alpha"))["keys"]
    beta_keys = (await dominus.redis.list(prefix="cache:", category="tenant-beta-co"))["keys"]
    assert alpha_keys == beta_keys == ["cache:/notes"]
    assert (await dominus.redis.list(prefix="cache:"))["keys"] == []  # nothing in the default category
    entry = await dominus.redis.get("cache:/notes", category="tenant-beta-co")
    assert entry["value"]["body"] == ["beta secret"] and 0 < entry["ttl_remaining"] <= 300


async def test_the_key_is_path_and_sorted_query(dominus_app: FastAPI, dominus_user_client: UserFactory) -> None:
    alice = await dominus_user_client(tenants=["alpha"])
    assert _state(await alice.get("/search", params=[("a", "1"), ("b", "2")])) == "miss"
    assert _state(await alice.get("/search", params=[("b", "2"), ("a", "1")])) == "hit"
    assert _state(await alice.get("/search", params={"a": "2"})) == "miss"
    long_value = "x" * 2000
    assert _state(await alice.get("/search", params={"q": long_value})) == "miss"
    hit = await alice.get("/search", params={"q": long_value})
    assert _state(hit) == "hit" and hit.json() == {"query": [["q", long_value]]}
    assert dominus_app.state.runs["search"] == 3


async def test_prefix_invalidation_deletes_matching_entries(
    dominus: Dominus, dominus_app: FastAPI, dominus_user_client: UserFactory
) -> None:
    alice = await dominus_user_client(tenants=["alpha"])
    for path in ("/notes/1", "/notes/2", "/search"):
        await alice.get(path)
    assert _state(await alice.get("/notes/1")) == "hit"
    assert (await alice.post("/purge", params={"prefix": "/notes/"})).json() == {"deleted": 2}
    assert _state(await alice.get("/notes/1")) == "miss"
    assert _state(await alice.get("/search")) == "hit"
    refused = await alice.post("/purge", params={"prefix": "notes"})
    assert refused.status_code == 400 and "path_prefix" in refused.json()["detail"]


async def test_per_user_and_per_app_entries(
    dominus: Dominus, dominus_app_client: httpx.AsyncClient, dominus_user_client: UserFactory
) -> None:
    alice = await dominus_user_client(tenants=["alpha"])
    carol = await dominus_user_client(tenants=["alpha"])
    assert (await alice.get("/mine")).json() == {"user": alice.user.id}
    mine = await carol.get("/mine")
    assert (mine.json(), _state(mine)) == ({"user": carol.user.id}, "miss")
    assert _state(await carol.get("/mine")) == "hit"

    first = await dominus_app_client.get("/catalog")
    assert (first.json(), _state(first)) == ({"version": 1}, "miss")
    assert (await alice.get("/catalog")).json() == {"version": 1}
    assert (await dominus.redis.list(prefix="cache:", category=APP_CACHE_CATEGORY))["keys"] == ["cache:/catalog"]
    await dominus_app_client.post("/catalog/refresh")
    assert (await dominus_app_client.get("/catalog")).json() == {"version": 2}


async def test_tenant_entries_need_a_tenant(
    dominus_app_client: httpx.AsyncClient, dominus_user_client: UserFactory
) -> None:
    anonymous = await dominus_app_client.get("/notes")
    assert anonymous.status_code == 401
    loner = await dominus_user_client()
    assert (await loner.get("/notes")).json()["code"] == "no_tenant"


async def test_a_cache_that_is_down_does_not_fail_the_answer(
    dominus: Dominus, dominus_app: FastAPI, dominus_user_client: UserFactory
) -> None:
    alice = await dominus_user_client(tenants=["alpha"])
    await alice.get("/search")
    await dominus.admin.set_faults(error_rate=1.0, error_status=503, paths=["/api/whisperer"])
    try:
        for _ in range(2):
            answer = await alice.get("/search")
            assert answer.status_code == 200 and _state(answer) == "miss"
        assert dominus_app.state.runs["search"] == 3
        refused = await alice.post("/purge", params={"prefix": "/search"})  # invalidation failures are raised
        assert refused.status_code == 503
    finally:
        await dominus.admin.set_faults(error_rate=0.0)
    assert _state(await alice.get("/search")) == "hit"


@pytest.mark.parametrize("ttl", [59, 86401, 0, -5, True, 300.0, "300"])
def test_ttl_outside_whisperer_bounds_is_refused_at_decoration(ttl: Any) -> None:
    with pytest.raises(ValidationError) as caught:
        cached(ttl=ttl)
    assert caught.value.details["field"] == "ttl"
    assert "60 to 86400" in caught.value.message


def test_bounds_themselves_and_bad_options() -> None:
    assert callable(cached(ttl=60)) and callable(cached(ttl=86400))
    with pytest.raises(ValidationError) as caught:
        cached(tags=["ok", "bad\nname"])
    assert caught.value.details["field"] == "tags"
    with pytest.raises(ValueError, match="per must be"):
        cached(per="session")  # type: ignore[arg-type]
