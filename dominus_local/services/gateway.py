"""The gateway (spec 7.1): ``POST /jwt/mint`` and ``GET /jwt/jwks``.

``/jwt/mint`` takes the raw PSK as Bearer and dispatches on the body's ``method`` through
:data:`MINT_METHODS`. ``auth.self`` (the service-token mint, spec 5.2) lives here; ``auth.mint`` (user tokens
for an application, spec 5.7) is registered by the identity service with :func:`register_mint_method`. Any
other ``method`` gets 400 ``validation_failed``. Answers carry a credential, so the endpoint is exempt from
idempotency storage (spec 6.3).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from dominus_local import identity
from dominus_local.errors import ApiError
from dominus_local.metrics import record_token_minted
from dominus_local.routing import RequestContext, ServiceRouter
from dominus_local.security import INVALID_TOKEN_CHALLENGE, signer

__all__ = ["MINT_METHODS", "MintHandler", "authenticate_psk", "mint_self", "register_mint_method", "router"]

router = ServiceRouter("gateway")

MintHandler = Callable[[RequestContext, str, Mapping[str, Any]], Awaitable[dict[str, Any]]]
"""``handler(ctx, client_id, params) -> data``: ``client_id`` is the client that owns the Bearer PSK."""


async def authenticate_psk(ctx: RequestContext) -> str:
    """The id of the active client that owns the Bearer PSK, else 401 ``invalid_credentials``."""
    psk = ctx.psk or ""
    async with ctx.state.db.begin() as conn:
        client_id = await identity.client_for_psk(conn, psk)
    if client_id is None:
        raise ApiError(
            "invalid_credentials",
            "The PSK is unknown or its client is not active",
            headers={"WWW-Authenticate": INVALID_TOKEN_CHALLENGE},
        )
    return client_id


async def mint_self(ctx: RequestContext, client_id: str, params: Mapping[str, Any]) -> dict[str, Any]:
    """``auth.self``: a service token for the PSK's client (spec 5.2, 5.3).

    ``tenant_id`` is the client's tenant when it is linked to exactly one, else ``null``; roles and scopes
    are the effective sets for that tenant. There is no ``sid``.
    """
    state = ctx.state
    async with state.db.begin() as conn:
        tenant_id = await identity.default_tenant(conn, "client", client_id, exactly_one=True)
        access = await identity.access_for(conn, "client", client_id, tenant_id)
    claims = {
        "sub": client_id,
        "subject_type": "client",
        "tenant_id": tenant_id,
        **access.tenant_claims(),
        "roles": list(access.roles),
        "scopes": list(access.scopes),
        "project_slug": state.settings.project_slug,
        "environment": state.settings.environment,
    }
    token_signer = signer(state)
    token = token_signer.issue_token(claims)
    record_token_minted(state)
    return {"access_token": token, "token_type": "bearer", "expires_in": token_signer.default_ttl}


MINT_METHODS: dict[str, MintHandler] = {"auth.self": mint_self}
"""The ``method`` values that ``/jwt/mint`` accepts, each with its handler."""


def register_mint_method(name: str, handler: MintHandler) -> None:
    """Add a ``/jwt/mint`` method (the identity service registers ``auth.mint`` this way)."""
    MINT_METHODS[name] = handler


@router.post("/jwt/mint", auth="psk", replay=False, safe=True)
async def mint(ctx: RequestContext) -> dict[str, Any]:
    client_id = await authenticate_psk(ctx)
    method = ctx.fields.str("method")
    handler = MINT_METHODS.get(method)
    if handler is None:
        raise ApiError(
            "validation_failed",
            f"Invalid field 'method': must be one of {', '.join(sorted(MINT_METHODS))}",
            details={"field": "method", "reason": "unknown method"},
        )
    params = ctx.fields.dict("params", required=False) or {}
    return await handler(ctx, client_id, params)


@router.get("/jwt/jwks", auth="none")
async def jwks(ctx: RequestContext) -> dict[str, Any]:
    return signer(ctx.state).jwks()
