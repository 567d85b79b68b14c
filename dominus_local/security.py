"""Keys, tokens and credentials: RSA signing key and JWKS, JWT issue and verify, bcrypt, PSKs.

The signing key is a 2048-bit RSA key kept in ``<data_dir>/signing_key.pem`` (mode 0600), or in memory for an
ephemeral instance. Its ``kid`` is the RFC 7638 thumbprint (spec 5.4). Tokens are RS256 JWTs with the header
``kid``; verification follows spec 5.5 steps 2 and 3 (the subject and session checks need the database and
live in the dispatcher).
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import secrets
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio.to_thread
import bcrypt
import jwt
import jwt.types
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from dominus_local.errors import ApiError

if TYPE_CHECKING:
    from dominus_local.settings import LocalSettings
    from dominus_local.state import LocalState

__all__ = [
    "INVALID_TOKEN_CHALLENGE",
    "LEEWAY_SECONDS",
    "Credentials",
    "SigningKey",
    "TokenSigner",
    "credentials",
    "generate_psk",
    "generate_token",
    "hash_password",
    "hash_password_async",
    "issue_token",
    "jwk_thumbprint",
    "load_credentials",
    "load_or_create_psk",
    "load_signing_key",
    "psk_digest",
    "signer",
    "token_digest",
    "verify_password",
    "verify_password_async",
    "verify_token",
    "write_private_file",
]

KEY_BITS = 2048
LEEWAY_SECONDS = 5
"""Clock-skew allowance for ``exp`` and ``nbf`` (spec 5.5 allows at most 30 s; we allow 5 s)."""
INVALID_TOKEN_CHALLENGE = 'Bearer error="invalid_token"'
SIGNING_KEY_FILE = "signing_key.pem"
PSK_FILE = "psk"


# --- files ------------------------------------------------------------------------------------------------


def write_private_file(path: Path, data: bytes) -> None:
    """Create ``path`` with mode 0600 from the start (never world-readable, not even briefly)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        # Two processes starting on one directory at once: the first file wins, the other adopts it.
        try:
            os.link(tmp, path)
        except FileExistsError:
            pass
        except OSError:
            # A file system without hard links: fall back to a rename, which cannot refuse an existing file.
            if not path.exists():
                os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


# --- PSKs and opaque tokens --------------------------------------------------------------------------------


def generate_psk() -> str:
    """A fresh PSK: 64 lower-case hex characters (256 bits, spec 5.1)."""
    return secrets.token_hex(32)


def generate_token() -> str:
    """An opaque token with 256 bits of entropy, base64url without padding (refresh, reset, invitation)."""
    return secrets.token_urlsafe(32)


def psk_digest(psk: str) -> str:
    """SHA-256 hex digest of a PSK; PSKs are high-entropy, so the digest allows lookup (spec 5.8)."""
    return hashlib.sha256(psk.encode("utf-8")).hexdigest()


def token_digest(token: str) -> str:
    """SHA-256 hex digest of an opaque token, the form in which it is stored (spec 5.8)."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def load_or_create_psk(data_dir: Path) -> tuple[str, bool]:
    """The PSK kept in ``<data_dir>/psk``, creating it (mode 0600) on first use (spec 2.3).

    Returns ``(psk, created)`` so that ``dominus-local serve`` can print a PSK it just generated, once.
    """
    path = data_dir / PSK_FILE
    created = False
    if not path.exists():
        write_private_file(path, (generate_psk() + "\n").encode("ascii"))
        created = True
    psk = path.read_text("utf-8").strip()
    if len(psk) < 32:
        raise RuntimeError(f"The PSK file {path} holds fewer than 32 characters; delete it to make a new one")
    return psk, created


# --- passwords ----------------------------------------------------------------------------------------------


def hash_password(password: str, rounds: int = 12) -> str:
    """bcrypt hash (cost ``rounds``); blocking, see :func:`hash_password_async`."""
    return bcrypt.hashpw(password.encode("utf-8"), bcrypt.gensalt(rounds)).decode("ascii")


def verify_password(password: str, hashed: str | None) -> bool:
    """Constant-time check of ``password`` against a bcrypt hash; ``False`` when either is unusable."""
    if not isinstance(password, str) or not hashed:
        return False
    raw = password.encode("utf-8")
    if len(raw) > 72:
        return False
    try:
        return bcrypt.checkpw(raw, hashed.encode("ascii"))
    except ValueError:
        return False


async def hash_password_async(password: str, rounds: int = 12) -> str:
    """:func:`hash_password` in a worker thread, so that a slow hash does not stall the event loop."""
    return await anyio.to_thread.run_sync(hash_password, password, rounds)


async def verify_password_async(password: str, hashed: str | None) -> bool:
    """:func:`verify_password` in a worker thread."""
    return await anyio.to_thread.run_sync(verify_password, password, hashed)


# --- the signing key ------------------------------------------------------------------------------------------


def _b64url_uint(value: int) -> str:
    raw = value.to_bytes((value.bit_length() + 7) // 8 or 1, "big")
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def jwk_thumbprint(n: str, e: str) -> str:
    """RFC 7638 thumbprint of an RSA public key given as base64url ``n`` and ``e``: the ``kid`` we publish."""
    # Only the required members, in lexicographic order, without whitespace.
    canonical = json.dumps({"e": e, "kty": "RSA", "n": n}, separators=(",", ":"), sort_keys=True)
    return base64.urlsafe_b64encode(hashlib.sha256(canonical.encode()).digest()).rstrip(b"=").decode()


@dataclass(frozen=True)
class SigningKey:
    """An RSA key pair with its RFC 7638 ``kid`` and its public JWK."""

    private_key: rsa.RSAPrivateKey = field(repr=False)
    kid: str
    jwk: dict[str, str] = field(repr=False)

    @classmethod
    def from_private_key(cls, private_key: rsa.RSAPrivateKey) -> SigningKey:
        numbers = private_key.public_key().public_numbers()
        n, e = _b64url_uint(numbers.n), _b64url_uint(numbers.e)
        kid = jwk_thumbprint(n, e)
        jwk = {"kty": "RSA", "use": "sig", "alg": "RS256", "kid": kid, "n": n, "e": e}
        return cls(private_key, kid, jwk)

    @classmethod
    def generate(cls) -> SigningKey:
        return cls.from_private_key(rsa.generate_private_key(public_exponent=65537, key_size=KEY_BITS))

    def private_pem(self) -> bytes:
        return self.private_key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )


def load_signing_key(data_dir: Path | None) -> SigningKey:
    """The signing key of ``data_dir`` (created with mode 0600 on first start), or a fresh one in memory."""
    if data_dir is None:
        return SigningKey.generate()
    path = data_dir / SIGNING_KEY_FILE
    if not path.exists():
        write_private_file(path, SigningKey.generate().private_pem())
    loaded = serialization.load_pem_private_key(path.read_bytes(), password=None)
    if not isinstance(loaded, rsa.RSAPrivateKey) or loaded.key_size < KEY_BITS:
        raise RuntimeError(f"{path} does not hold an RSA private key of at least {KEY_BITS} bits")
    return SigningKey.from_private_key(loaded)


# --- tokens -----------------------------------------------------------------------------------------------------


def _refused(message: str, code: str = "invalid_token") -> ApiError:
    return ApiError(code, message, headers={"WWW-Authenticate": INVALID_TOKEN_CHALLENGE})


_VERIFIED_LIMIT = 4096


class TokenSigner:
    """Issues and verifies the instance's RS256 tokens.

    ``clock`` returns Unix seconds; tests inject a fake one instead of sleeping.
    """

    def __init__(
        self,
        key: SigningKey,
        *,
        issuer: str,
        audience: str | None = None,
        default_ttl: int = 900,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.key = key
        self.issuer = issuer
        self.audience = audience
        self.default_ttl = default_ttl
        self.clock = clock
        self._public = {key.kid: key.private_key.public_key()}
        # Claims of tokens whose signature, issuer and audience already checked out with this signer's key;
        # only the times are checked again on every use.
        self._verified: dict[str, dict[str, Any]] = {}

    def jwks(self) -> dict[str, Any]:
        """The key set (spec 5.4): ``{"keys": [JWK, ...]}``."""
        return {"keys": [dict(self.key.jwk)]}

    def issue_token(self, claims: Mapping[str, Any], *, ttl: int | None = None) -> str:
        """Sign ``claims`` as an RS256 JWT, adding ``iss``, ``iat``, ``nbf``, ``exp``, ``jti`` (and ``aud``).

        Claims given by the caller win over the defaults, except ``exp``, which always follows ``ttl``.
        """
        now = int(self.clock())
        lifetime = self.default_ttl if ttl is None else ttl
        payload: dict[str, Any] = {"iss": self.issuer, "iat": now, "nbf": now, "jti": str(uuid.uuid4())}
        if self.audience:
            payload["aud"] = self.audience
        payload.update(claims)
        payload["exp"] = now + lifetime
        return jwt.encode(payload, self.key.private_key, algorithm="RS256", headers={"kid": self.key.kid})

    def verify_token(self, token: str) -> dict[str, Any]:
        """Check a token as spec 5.5 steps 2 and 3 say and return its claims.

        Raises :class:`ApiError` 401 ``invalid_token`` (malformed, wrong algorithm, unknown ``kid``, bad
        signature, not yet valid, wrong issuer or audience) or ``token_expired``. Messages never quote the token.
        A token that passed once is remembered (up to 4,096 of them): its signature is not checked again, its
        times are.
        """
        known = self._verified.get(token)
        if known is not None:
            self._check_times(known)
            return dict(known)
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise _refused("The bearer token is malformed") from None
        if header.get("alg") != "RS256":
            raise _refused("The bearer token must be signed with RS256")
        public_key = self._public.get(str(header.get("kid")))
        if public_key is None:
            raise _refused("The bearer token was signed by an unknown key")
        # Times are checked below against the injectable clock, not PyJWT's wall clock.
        options: jwt.types.Options = {
            "require": ["exp", "sub"],
            "verify_aud": self.audience is not None,
            "verify_exp": False,
            "verify_nbf": False,
            "verify_iat": False,
        }
        try:
            claims: dict[str, Any] = jwt.decode(
                token, public_key, algorithms=["RS256"], audience=self.audience, issuer=self.issuer, options=options
            )
        except jwt.PyJWTError:
            raise _refused("The bearer token is invalid") from None
        self._check_times(claims)
        if len(self._verified) >= _VERIFIED_LIMIT:
            self._verified.clear()
        self._verified[token] = dict(claims)
        return claims

    def _check_times(self, claims: Mapping[str, Any]) -> None:
        now = self.clock()
        exp, nbf = claims.get("exp"), claims.get("nbf")
        if isinstance(exp, bool) or not isinstance(exp, int | float):
            raise _refused("The bearer token has no valid expiry")
        if nbf is not None and (isinstance(nbf, bool) or not isinstance(nbf, int | float)):
            raise _refused("The bearer token has an invalid not-before time")
        if now >= exp + LEEWAY_SECONDS:
            raise _refused("The bearer token has expired", "token_expired")
        if nbf is not None and now < nbf - LEEWAY_SECONDS:
            raise _refused("The bearer token is not valid yet")


# --- per-instance access ------------------------------------------------------------------------------------


@dataclass
class Credentials:
    """The instance's key material, kept in ``state.extras["security"]``."""

    signer: TokenSigner
    psk: str = field(repr=False)
    """The bootstrap client's PSK."""
    psk_created: bool = False
    """Whether this start generated the PSK (``serve`` prints it once)."""


def credentials(state: LocalState) -> Credentials:
    """The key material of a started instance."""
    found = state.extras.get("security")
    if not isinstance(found, Credentials):
        raise RuntimeError("the instance has not started: no signing key loaded")
    return found


def signer(state: LocalState) -> TokenSigner:
    """The token signer of a started instance."""
    return credentials(state).signer


def issue_token(state: LocalState, claims: Mapping[str, Any], *, ttl: int | None = None) -> str:
    """Sign ``claims`` with the instance's key (see :meth:`TokenSigner.issue_token`)."""
    return signer(state).issue_token(claims, ttl=ttl)


def verify_token(state: LocalState, token: str) -> dict[str, Any]:
    """Verify a token with the instance's keys (see :meth:`TokenSigner.verify_token`)."""
    return signer(state).verify_token(token)


def load_credentials(settings: LocalSettings, *, clock: Callable[[], float] = time.time) -> Credentials:
    """Load (or create) the signing key and settle the PSK, as spec 2.3 orders: configured, file, random."""
    key = load_signing_key(settings.data_dir)
    signer_ = TokenSigner(
        key,
        issuer=settings.issuer,
        audience=settings.audience,
        default_ttl=settings.access_token_ttl,
        clock=clock,
    )
    configured = settings.configured_psk()
    if configured is not None:
        if len(configured) < 32:
            raise ValueError("The configured PSK (DOMINUS_LOCAL_PSK or DOMINUS_TOKEN) needs at least 32 characters")
        return Credentials(signer_, configured, psk_created=False)
    if settings.data_dir is None:
        return Credentials(signer_, generate_psk(), psk_created=True)
    psk, created = load_or_create_psk(settings.data_dir)
    return Credentials(signer_, psk, psk_created=created)
