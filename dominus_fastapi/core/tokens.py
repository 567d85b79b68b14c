"""Service-token cache (spec 5.6), key-set cache and local RS256 verification (spec 5.10)."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import itertools
import json
import logging
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

import jwt
from jwt.algorithms import RSAAlgorithm

from dominus_fastapi.core.cache import Clock, EncryptedTTLCache
from dominus_fastapi.core.errors import AuthenticationError, DominusError
from dominus_fastapi.core.settings import JWKS_REFETCH_INTERVAL, JWKS_TTL, TOKEN_REFRESH_MARGIN

logger = logging.getLogger("dominus_fastapi")

MintFunc = Callable[[], Awaitable[Mapping[str, Any]]]
JwksFetch = Callable[[], Awaitable[Mapping[str, Any]]]


def unverified_claims(token: str) -> dict[str, Any]:
    """The payload of a JWS compact token, decoded without checking anything; ``{}`` if unreadable."""
    try:
        payload = token.split(".")[1]
        decoded = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    except (IndexError, ValueError):
        return {}
    return decoded if isinstance(decoded, dict) else {}


class ServiceTokenCache:
    """One service token per client, keyed by gateway URL and PSK, minted by ``mint`` when needed.

    The expiry is read from the unverified payload (``exp - iat`` counted from receipt, else ``exp``, else
    the answer's ``expires_in``). ``get()`` returns a token with at least ``refresh_margin`` seconds left,
    minting a new one otherwise; at
    most one mint runs at a time and concurrent callers wait for it. ``invalidate(token)`` drops the token
    only if it is still the cached one, so that many callers failing with the same stale token cause one mint.
    The token is kept in an :class:`EncryptedTTLCache` keyed from the PSK.
    """

    def __init__(
        self,
        mint: MintFunc,
        *,
        gateway_url: str,
        psk: str,
        clock: Clock = time.time,
        refresh_margin: float = TOKEN_REFRESH_MARGIN,
        project_slug: str | None = None,
        environment: str | None = None,
    ) -> None:
        self._mint = mint
        self._key = hashlib.sha256(f"{gateway_url}\0{psk}".encode()).hexdigest()
        self.clock = clock
        self._store = EncryptedTTLCache(psk, clock=lambda: self.clock())
        self._refresh_margin = refresh_margin
        self._expected = {"project_slug": project_slug, "environment": environment}
        self._warned = False
        self._lock = asyncio.Lock()
        self.mint_count = 0

    def rebind(self) -> None:
        """A new lock for a new event loop (the transport calls this when its loop changes)."""
        self._lock = asyncio.Lock()

    def _cached(self) -> str | None:
        entry = self._store.get(self._key)
        if not isinstance(entry, dict):
            return None
        if float(entry["exp"]) - self.clock() < self._refresh_margin:
            return None
        token = entry["token"]
        return token if isinstance(token, str) else None

    async def get(self) -> str:
        """A usable service token, minting one if none is cached or it is about to expire."""
        token = self._cached()
        if token is not None:
            return token
        async with self._lock:
            token = self._cached()
            if token is not None:
                return token
            data = await self._mint()
            token = data.get("access_token") or data.get("token")
            if not isinstance(token, str) or not token:
                raise DominusError("the gateway answered a mint without an access token", endpoint="/jwt/mint")
            self.mint_count += 1
            now = self.clock()
            claims = unverified_claims(token)
            exp, iat = claims.get("exp"), claims.get("iat")
            if isinstance(exp, int | float) and isinstance(iat, int | float) and exp > iat:
                # The token's own lifetime, counted on our clock, so a skewed local clock cannot make a
                # fresh token look expired (which would mint on every call).
                exp = now + (exp - iat)
            elif not isinstance(exp, int | float):
                expires_in = data.get("expires_in")
                exp = now + float(expires_in) if isinstance(expires_in, int | float) else now
            self._check_claims(claims)
            # Kept until expiry; _cached() stops returning it refresh_margin seconds before.
            self._store.set(self._key, {"token": token, "exp": float(exp)}, float(exp) - now)
            return token

    def current(self) -> str | None:
        """The cached token if any (fresh or not), without minting."""
        entry = self._store.get(self._key)
        return entry.get("token") if isinstance(entry, dict) else None

    def invalidate(self, token: str | None = None) -> None:
        """Forget the cached token; with ``token``, only if that is still the cached one."""
        if token is None or self.current() == token:
            self._store.delete(self._key)

    def _check_claims(self, claims: Mapping[str, Any]) -> None:
        if self._warned:
            return
        for claim, expected in self._expected.items():
            if expected is not None and claim in claims and claims[claim] != expected:
                self._warned = True
                logger.warning(
                    "service token claim %s=%r differs from the configured value %r (CB_%s)",
                    claim,
                    claims[claim],
                    expected,
                    "PROJECT_SLUG" if claim == "project_slug" else "ENVIRONMENT",
                )
                return

    def __repr__(self) -> str:
        return f"ServiceTokenCache(cached={self.current() is not None})"


class JwksCache:
    """The gateway's key set, cached for ``ttl`` seconds; refetched on an unknown ``kid`` at most every
    ``refetch_interval`` seconds; a stale copy is used when a fetch fails."""

    def __init__(
        self,
        fetch: JwksFetch,
        *,
        clock: Clock = time.monotonic,
        ttl: float = JWKS_TTL,
        refetch_interval: float = JWKS_REFETCH_INTERVAL,
    ) -> None:
        self._fetch = fetch
        self.clock = clock
        self._ttl = ttl
        self._refetch_interval = refetch_interval
        self._keys: list[dict[str, Any]] | None = None
        self._fetched_at = 0.0
        self._lock = asyncio.Lock()
        self.fetch_count = 0
        self.generation = 0
        """Changes whenever a fetch replaces the key set; never the same number in two caches of the process."""
        self._verified: dict[tuple[str, Any], dict[str, Any]] = {}

    def rebind(self) -> None:
        """A new lock for a new event loop (the transport calls this when its loop changes)."""
        self._lock = asyncio.Lock()

    async def _refresh(self) -> list[dict[str, Any]]:
        try:
            data = await self._fetch()
        except DominusError:
            if self._keys is not None:
                logger.warning("key set fetch failed; using the cached copy")
                return self._keys
            raise
        keys = data.get("keys")
        if not isinstance(keys, list):
            if self._keys is not None:
                return self._keys
            raise DominusError("the key set has no 'keys' list", endpoint="/jwt/jwks")
        self.fetch_count += 1
        self.generation = next(_GENERATIONS)
        self._keys = [k for k in keys if isinstance(k, dict)]
        self._fetched_at = self.clock()
        self._verified.clear()
        return self._keys

    def fresh_generation(self) -> int | None:
        """:attr:`generation` while the cached key set is fresh; ``None`` when there is none or it is stale."""
        if self._keys is None or self.clock() - self._fetched_at >= self._ttl:
            return None
        return self.generation

    def verified(self, key: tuple[str, Any]) -> dict[str, Any] | None:
        """Claims of a token (with the audience it was checked for) whose signature verified against the
        current key set, while that key set is fresh; ``None`` otherwise."""
        claims = self._verified.get(key)
        if claims is None or self._keys is None or self.clock() - self._fetched_at >= self._ttl:
            return None
        return dict(claims)

    def remember(self, key: tuple[str, Any], claims: Mapping[str, Any]) -> None:
        """Record a successful signature check (forgotten whenever the key set is fetched again)."""
        if len(self._verified) >= _VERIFIED_LIMIT:
            self._verified.clear()
        self._verified[key] = dict(claims)

    async def keys(self) -> list[dict[str, Any]]:
        """The cached keys, fetched when missing or older than the TTL."""
        async with self._lock:
            if self._keys is None or self.clock() - self._fetched_at >= self._ttl:
                return await self._refresh()
            return self._keys

    async def keys_for(self, kid: str) -> list[dict[str, Any]]:
        """Keys matching ``kid``; refetches once if it is unknown and the last fetch is old enough."""
        keys = await self.keys()
        found = [k for k in keys if k.get("kid") == kid]
        if found:
            return found
        async with self._lock:
            if self._keys is None or self.clock() - self._fetched_at >= self._refetch_interval:
                keys = await self._refresh()
            else:
                keys = self._keys
        return [k for k in keys if k.get("kid") == kid]


_GENERATIONS = itertools.count(1)
"""Key-set generations, shared by every cache: a token remembered under one client's key set can never match
another client's (a new client after a restart starts from a number never used before)."""

_VERIFIED_LIMIT = 4096
"""How many verified tokens a key-set cache remembers (a busy app sees the same session tokens again and again)."""


def _invalid(reason: str) -> AuthenticationError:
    return AuthenticationError(f"Invalid token: {reason}", code="invalid_token")


async def verify_token(
    token: str,
    jwks: JwksCache,
    *,
    audience: str | Sequence[str] | None = None,
    leeway: float = 0,
    clock: Clock = time.time,
) -> dict[str, Any]:
    """Check a token locally (spec 5.10) and return its claims.

    Only RS256 is accepted (``none``, HMAC and any other algorithm are refused before any key is touched).
    The key with the token's ``kid`` is used, or each key in turn when there is no ``kid``. ``exp`` is
    required; ``exp`` and ``nbf`` are checked against ``clock`` with ``leeway`` seconds. ``aud`` is checked
    only when ``audience`` is given. Raises :class:`AuthenticationError` with code ``token_expired`` or
    ``invalid_token``.

    A token whose signature (and audience) checked out is remembered by ``jwks`` while its key set stays the
    same, so checking it again costs only the time checks.
    """
    if not isinstance(token, str) or token.count(".") != 2:
        raise _invalid("not a JWS compact token")
    memo = (token, audience if audience is None or isinstance(audience, str) else tuple(audience))
    known = jwks.verified(memo)
    if known is not None:
        return _check_times(known, clock=clock, leeway=leeway)
    try:
        header = jwt.get_unverified_header(token)
    except jwt.PyJWTError as exc:
        raise _invalid("unreadable header") from exc
    if header.get("alg") != "RS256":
        raise _invalid("algorithm must be RS256")
    kid = header.get("kid")
    candidates = await jwks.keys_for(kid) if isinstance(kid, str) else await jwks.keys()
    candidates = [k for k in candidates if k.get("kty") == "RSA" and k.get("alg", "RS256") == "RS256"]
    if not candidates:
        raise _invalid("no matching signing key")
    options: dict[str, Any] = {
        "verify_exp": False,
        "verify_nbf": False,
        "verify_iat": False,
        "verify_aud": audience is not None,
        "require": ["exp"],
    }
    claims: dict[str, Any] | None = None
    for jwk in candidates:
        try:
            key = RSAAlgorithm.from_jwk(jwk)
        except (jwt.PyJWTError, ValueError, KeyError):
            continue
        try:
            claims = jwt.decode(token, key, algorithms=["RS256"], audience=audience, options=options)  # type: ignore[arg-type]
            break
        except jwt.InvalidAudienceError as exc:
            raise _invalid("audience mismatch") from exc
        except jwt.MissingRequiredClaimError as exc:
            raise _invalid(f"missing claim {exc.claim}") from exc
        except jwt.PyJWTError:
            continue
    if claims is None:
        raise _invalid("bad signature")
    jwks.remember(memo, claims)
    return _check_times(claims, clock=clock, leeway=leeway)


def _check_times(claims: dict[str, Any], *, clock: Clock, leeway: float) -> dict[str, Any]:
    now = clock()
    exp = claims.get("exp")
    if not isinstance(exp, int | float):
        raise _invalid("exp is not a number")
    if now >= exp + leeway:
        raise AuthenticationError("Token expired", code="token_expired")
    nbf = claims.get("nbf")
    if nbf is not None:
        if not isinstance(nbf, int | float):
            raise _invalid("nbf is not a number")
        if now + leeway < nbf:
            raise _invalid("not yet valid")
    return claims
