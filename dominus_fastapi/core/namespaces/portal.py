"""Portal end-user sessions (spec 5.7, 7.9).

Every method that acts for a signed-in subject takes ``user_token=``: that session token is sent as the
Bearer credential instead of the service token. Through ``client.as_user(token).portal`` the view's token is
used without passing it. The methods for someone who has no session yet (``login``, ``login_client``,
``request_password_reset``, ``confirm_password_reset``, ``register``, ``verify_email``,
``resend_verification``, ``accept_invitation``) always use the service token, also through a user view.

Who a call acts for (a choice the spec leaves to the SDK): a plain ``Dominus`` client is stateless and holds
only the service credential, so a session call on it without ``user_token=`` would answer for the *service*
(``me``, ``get_navigation``, ``check_page_access``: an admin's identity and access) or be refused by the
server. Those calls raise :class:`AuthorizationError` before sending instead, naming ``as_user(token)`` and
``user_token=``. A service that wants its own identity or navigation says so: ``me(as_service=True)``,
``get_navigation(as_service=True)``, ``check_page_access(path, as_service=True)``.

A client built with ``remember_login=True`` (the module-level object of the ``dominus`` compatibility
package, for scripts written for the reference SDK) keeps the session of its last ``login`` or
``accept_invitation`` and acts for it in the session calls; ``refresh`` and ``switch_tenant`` update it, and
``logout`` (or revoking the current session) forgets it. It is meant for scripts: one object, one user. In a
web server, where requests of different users share the client, use a stateless client and ``as_user``.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any, cast

from dominus_fastapi.core.errors import AuthorizationError, ValidationError
from dominus_fastapi.core.namespaces.base import UNSET, Namespace, Unset, update_fields
from dominus_fastapi.core.types import (
    ClientSession,
    EmailVerified,
    LoggedOut,
    LoginResult,
    Me,
    Navigation,
    PageAccess,
    PasswordChanged,
    Preferences,
    Profile,
    Registered,
    ResetConfirmed,
    ResetRequested,
    SessionList,
    SessionRevoked,
    SessionsRevoked,
    TenantSwitched,
    VerificationResent,
)

__all__ = ["PortalNamespace", "PortalSession"]


@dataclass
class PortalSession:
    """The user session a ``remember_login=True`` client acts for; the tokens never appear in its ``repr``."""

    access_token: str = field(repr=False)
    refresh_token: str | None = field(repr=False, default=None)
    session_id: str | None = None


def _no_session(method: str, *, service_form: bool) -> AuthorizationError:
    hint = f" (for the service's own identity: portal.{method}(..., as_service=True))" if service_form else ""
    return AuthorizationError(
        f"portal.{method}() acts for a signed-in user, and this client holds no user session: call "
        f"client.as_user(token).portal.{method}(...) or pass user_token= (the access_token of the login)"
        f"{hint}. Nothing was sent.",
        details={"field": "user_token", "reason": "no user session on this client"},
    )


def _uuid_path(value: Any, name: str) -> str:
    """A path id checked before sending (``ValidationError``): a malformed one could only come back as 404."""
    if isinstance(value, str) and len(value) == 36:
        try:
            return str(uuid.UUID(value))
        except ValueError:
            pass
    raise ValidationError(f"'{name}' must be a UUID", details={"field": name, "reason": "must be a UUID"})


def _for_end_user(body: dict[str, Any], end_user_ip: str | None, end_user_agent: str | None) -> dict[str, Any]:
    """Add the end user's address and User-Agent, for an app server that signs users in on their behalf.

    The server keys its per-address limits on ``end_user_ip`` (instead of the app server's own address) and
    records both on the session it opens. Only the service token's holder can send them.
    """
    if end_user_ip is not None:
        body["end_user_ip"] = end_user_ip
    if end_user_agent is not None:
        body["end_user_agent"] = end_user_agent
    return body


class PortalNamespace(Namespace):
    """Portal end-user sessions, profile, preferences, navigation and page access (spec 5.7, 7.9): ``client.portal``.

    The parameters shared by its methods:

    - ``user_token``: the session (access) token of the signed-in subject the call acts for, sent instead of
      the service token. Through ``client.as_user(token).portal`` (or the ``PortalDep`` dependency) the token is
      used without passing it. On a plain client without one, a session call raises ``AuthorizationError``
      before sending, so that the service's identity never answers a question about a user.
    - ``as_service``: on ``me``, ``get_navigation`` and ``check_page_access``, ask for the service's own
      identity, navigation or access instead.
    - ``end_user_ip``, ``end_user_agent``: on the calls for someone without a session yet (``login``,
      ``register``, password resets, ...), the browser's address and user agent as an app server saw them: the
      server throttles by that address and records both on the session.
    - ``tenant_id``: a tenant's UUID or slug.

    A client made with ``remember_login=True`` (for scripts) keeps the session of its last ``login`` and acts for
    it; never use one in a web server, where users share the client.

    Every method also takes, keyword only, ``timeout`` (seconds one attempt may take; default: the client's
    ``timeout``, ``DOMINUS_TIMEOUT``) and ``max_retries`` (how many more attempts a failure that is safe to
    repeat gets; default: the client's ``max_retries``, ``0`` for none). The calls that would not be harmless
    to repeat take ``idempotency_key`` too: the server carries out a key once (spec 3.5); when it is left out,
    the client makes one for the call, so that its own retries never repeat the change. Any call may also raise
    the transport errors (``DominusConnectionError``, ``DominusTimeoutError``, ``ServiceError``,
    ``RateLimitError``) once its retries are spent.
    """

    __slots__ = ()

    # --- whom a session call acts for ---------------------------------------------------------------------------

    def _remembers(self) -> bool:
        """Whether the client keeps the session of its logins (``remember_login=True``; never a user view)."""
        return bool(getattr(self._client, "remembers_login", False)) and not self._is_view()

    def _is_view(self) -> bool:
        return getattr(self._client, "_bearer", None) is not None

    def _remembered(self) -> PortalSession | None:
        session = getattr(self._client, "_portal_session", None) if self._remembers() else None
        return session if isinstance(session, PortalSession) else None

    def _remember(self, data: Any) -> None:
        if not self._remembers() or not isinstance(data, dict) or not isinstance(data.get("access_token"), str):
            return
        refresh = data.get("refresh_token")
        session_id = data.get("session_id")
        self._client._portal_session = PortalSession(  # type: ignore[attr-defined]
            data["access_token"],
            refresh if isinstance(refresh, str) else None,
            session_id if isinstance(session_id, str) else None,
        )

    def _forget(self) -> None:
        if self._remembers():
            self._client._portal_session = None  # type: ignore[attr-defined]

    def _acting_token(
        self, method: str, user_token: str | None, *, as_service: bool = False, service_form: bool = False
    ) -> tuple[str | None, bool, bool]:
        """``(user_token, keep_service_token, for_remembered)`` for a session call, checked before sending.

        The order: an explicit ``user_token``; a user view's own token; the remembered session of a
        ``remember_login`` client; the service token when ``as_service=True``; otherwise
        :class:`AuthorizationError`, so that the service's identity never answers a question about a user.
        """
        if as_service:
            if user_token is not None:
                raise ValidationError(
                    "as_service=True and user_token= name two different subjects: pass one of them",
                    details={"field": "as_service", "reason": "cannot be combined with user_token"},
                )
            return None, True, False
        if user_token is not None:
            return user_token, False, False
        if self._is_view():
            return None, False, False
        remembered = self._remembered()
        if remembered is not None:
            return remembered.access_token, False, True
        raise _no_session(method, service_form=service_form)

    # --- sign-in and sessions -------------------------------------------------------------------------------

    async def login(
        self,
        username: str,
        password: str,
        tenant_id: str | None = None,
        *,
        end_user_ip: str | None = None,
        end_user_agent: str | None = None,
        timeout: float | None = None,
        max_retries: int | None = None,
    ) -> LoginResult:
        """Sign a user in by username or e-mail (case-insensitive) and password.

        ``tenant_id`` (UUID or slug) picks the active tenant; by default the user's first tenant by slug.
        An app server signing users in passes ``end_user_ip`` / ``end_user_agent`` (the browser's): the server
        throttles by that address and records it on the session. Raises ``AuthenticationError``
        (``invalid_credentials``), ``AuthorizationError`` (``account_inactive``, or a tenant that is not the
        user's) or ``RateLimitError`` (429 ``rate_limited``, ``.retry_after`` says how long to wait). A
        ``remember_login`` client forgets its previous session first and remembers this one (a failed login
        leaves it signed out).
        """
        body: dict[str, Any] = {"username": username, "password": password}
        if tenant_id is not None:
            body["tenant_id"] = tenant_id
        self._forget()
        data = await self._client.request(
            "POST",
            "/api/portal/auth/login",
            body=_for_end_user(body, end_user_ip, end_user_agent),
            replay=False,
            keep_service_token=True,
            timeout=timeout,
            max_retries=max_retries,
        )
        self._remember(data)
        return cast(LoginResult, data)

    async def login_client(
        self,
        psk: str,
        tenant_id: str | None = None,
        *,
        end_user_ip: str | None = None,
        end_user_agent: str | None = None,
        timeout: float | None = None,
        max_retries: int | None = None,
    ) -> ClientSession:
        """Open a client session for the client that owns ``psk`` (no refresh token; ends with its token).

        Never remembered, also by a ``remember_login`` client: use ``as_user(result["access_token"])``.
        """
        body: dict[str, Any] = {"psk": psk}
        if tenant_id is not None:
            body["tenant_id"] = tenant_id
        data = await self._client.request(
            "POST",
            "/api/portal/auth/login-client",
            body=_for_end_user(body, end_user_ip, end_user_agent),
            replay=False,
            keep_service_token=True,
            timeout=timeout,
            max_retries=max_retries,
        )
        return cast(ClientSession, data)

    async def logout(
        self,
        user_token: str | None = None,
        *,
        timeout: float | None = None,
        max_retries: int | None = None,
        idempotency_key: str | None = None,
    ) -> LoggedOut:
        """End the session of ``user_token``: its access and refresh tokens stop working.

        A ``remember_login`` client logging out its own session forgets it, even when the call fails.
        """
        token, _, remembered = self._acting_token("logout", user_token)
        try:
            data = await self._client.request(
                "POST",
                "/api/portal/auth/logout",
                auth="user",
                user_token=token,
                timeout=timeout,
                max_retries=max_retries,
                idempotency_key=idempotency_key,
            )
        finally:
            if remembered:
                self._forget()
        return cast(LoggedOut, data)

    async def refresh(
        self,
        user_token: str | None = None,
        refresh_token: str | None = None,
        *,
        timeout: float | None = None,
        max_retries: int | None = None,
    ) -> LoginResult:
        """Rotate a refresh token and get a new access token (the login shape).

        With ``refresh_token`` (and the service token, or the session's own token), this works after the
        access token has expired. With only ``user_token``, that still-valid session is refreshed. The old
        refresh token stops working; presenting it again ends the session (``session_revoked``).

        With neither, a user view refreshes its own session and a ``remember_login`` client its remembered
        one (with its refresh token, and remembers the answer); a plain client raises
        :class:`AuthorizationError` before sending, because the service has no session to refresh.
        """
        remembered: PortalSession | None = None
        if refresh_token is None and user_token is None and not self._is_view():
            remembered = self._remembered()
            if remembered is None:
                raise _no_session("refresh", service_form=False)
            if remembered.refresh_token is None:
                user_token = remembered.access_token
            else:
                refresh_token = remembered.refresh_token
        body: dict[str, Any] = {}
        if refresh_token is not None:
            body["refresh_token"] = refresh_token
        data = await self._client.request(
            "POST",
            "/api/portal/auth/refresh",
            body=body,
            auth="service_or_user",
            user_token=user_token,
            keep_service_token=remembered is not None and user_token is None,
            replay=False,
            timeout=timeout,
            max_retries=max_retries,
        )
        if remembered is not None:
            self._remember(data)
        return cast(LoginResult, data)

    async def me(
        self,
        user_token: str | None = None,
        *,
        as_service: bool = False,
        timeout: float | None = None,
        max_retries: int | None = None,
    ) -> Me:
        """The token's subject, tenants and effective access, read from current data.

        Also the way to notice at once that a session was revoked: a local token check cannot (spec 5.10).
        Without a user session (see the class docstring) it raises :class:`AuthorizationError`;
        ``as_service=True`` asks for the service's own identity instead.
        """
        token, keep, _ = self._acting_token("me", user_token, as_service=as_service, service_form=True)
        data = await self._client.request(
            "GET",
            "/api/portal/auth/me",
            auth="service_or_user",
            user_token=token,
            keep_service_token=keep,
            safe=True,
            timeout=timeout,
            max_retries=max_retries,
        )
        return cast(Me, data)

    async def switch_tenant(
        self,
        tenant_id: str,
        user_token: str | None = None,
        *,
        timeout: float | None = None,
        max_retries: int | None = None,
    ) -> TenantSwitched:
        """Make another of the subject's tenants (UUID or slug) active; answers a new access token.

        A ``remember_login`` client switching its own session acts with the new access token from then on.
        """
        token, _, remembered = self._acting_token("switch_tenant", user_token)
        data = await self._client.request(
            "POST",
            "/api/portal/auth/switch-tenant",
            body={"tenant_id": tenant_id},
            auth="user",
            user_token=token,
            replay=False,
            timeout=timeout,
            max_retries=max_retries,
        )
        session = self._remembered() if remembered else None
        if session is not None and isinstance(data, dict) and isinstance(data.get("access_token"), str):
            session.access_token = data["access_token"]
        return cast(TenantSwitched, data)

    # --- passwords ------------------------------------------------------------------------------------------

    async def change_password(
        self,
        current_password: str,
        new_password: str,
        user_token: str | None = None,
        *,
        timeout: float | None = None,
        max_retries: int | None = None,
        idempotency_key: str | None = None,
    ) -> PasswordChanged:
        """Change the signed-in user's password; every other session of the user ends."""
        token, _, _ = self._acting_token("change_password", user_token)
        data = await self._client.request(
            "POST",
            "/api/portal/security/change-password",
            body={"current_password": current_password, "new_password": new_password},
            auth="user",
            user_token=token,
            timeout=timeout,
            max_retries=max_retries,
            idempotency_key=idempotency_key,
        )
        return cast(PasswordChanged, data)

    async def request_password_reset(
        self,
        email: str,
        *,
        end_user_ip: str | None = None,
        end_user_agent: str | None = None,
        timeout: float | None = None,
        max_retries: int | None = None,
        idempotency_key: str | None = None,
    ) -> ResetRequested:
        """Ask for a password-reset mail; the answer is the same whether or not the address is known."""
        data = await self._client.request(
            "POST",
            "/api/portal/security/request-reset",
            body=_for_end_user({"email": email}, end_user_ip, end_user_agent),
            keep_service_token=True,
            timeout=timeout,
            max_retries=max_retries,
            idempotency_key=idempotency_key,
        )
        return cast(ResetRequested, data)

    async def confirm_password_reset(
        self,
        token: str,
        new_password: str,
        *,
        end_user_ip: str | None = None,
        end_user_agent: str | None = None,
        timeout: float | None = None,
        max_retries: int | None = None,
        idempotency_key: str | None = None,
    ) -> ResetConfirmed:
        """Set a new password with the token of a reset mail; every session of the user ends."""
        data = await self._client.request(
            "POST",
            "/api/portal/security/confirm-reset",
            body=_for_end_user({"token": token, "new_password": new_password}, end_user_ip, end_user_agent),
            keep_service_token=True,
            timeout=timeout,
            max_retries=max_retries,
            idempotency_key=idempotency_key,
        )
        return cast(ResetConfirmed, data)

    async def list_sessions(
        self, user_token: str | None = None, *, timeout: float | None = None, max_retries: int | None = None
    ) -> SessionList:
        """The subject's active sessions, newest first; ``current`` marks the one of ``user_token``."""
        token, _, _ = self._acting_token("list_sessions", user_token)
        data = await self._client.request(
            "GET",
            "/api/portal/security/sessions",
            auth="user",
            user_token=token,
            safe=True,
            timeout=timeout,
            max_retries=max_retries,
        )
        return cast(SessionList, data)

    async def revoke_session(
        self,
        session_id: str,
        user_token: str | None = None,
        *,
        timeout: float | None = None,
        max_retries: int | None = None,
    ) -> SessionRevoked:
        """End one of the subject's own sessions (the current one included).

        A ``remember_login`` client revoking its remembered session forgets it.
        """
        ident = _uuid_path(session_id, "session_id")
        token, _, remembered = self._acting_token("revoke_session", user_token)
        session = self._remembered() if remembered else None
        data = await self._client.request(
            "DELETE",
            f"/api/portal/security/sessions/{ident}",
            auth="user",
            user_token=token,
            safe=True,
            timeout=timeout,
            max_retries=max_retries,
        )
        if session is not None and session.session_id == ident:
            self._forget()
        return cast(SessionRevoked, data)

    async def revoke_all_sessions(
        self,
        user_token: str | None = None,
        *,
        timeout: float | None = None,
        max_retries: int | None = None,
        idempotency_key: str | None = None,
    ) -> SessionsRevoked:
        """End every session of the subject except the current one."""
        token, _, _ = self._acting_token("revoke_all_sessions", user_token)
        data = await self._client.request(
            "POST",
            "/api/portal/security/sessions/revoke-all",
            auth="user",
            user_token=token,
            timeout=timeout,
            max_retries=max_retries,
            idempotency_key=idempotency_key,
        )
        return cast(SessionsRevoked, data)

    # --- profile and preferences -------------------------------------------------------------------------------

    async def get_profile(
        self, user_token: str | None = None, *, timeout: float | None = None, max_retries: int | None = None
    ) -> Profile:
        """The signed-in user's profile (created empty on first use)."""
        token, _, _ = self._acting_token("get_profile", user_token)
        data = await self._client.request(
            "GET",
            "/api/portal/profile",
            auth="user",
            user_token=token,
            safe=True,
            timeout=timeout,
            max_retries=max_retries,
        )
        return cast(Profile, data)

    async def update_profile(
        self,
        display_name: str | Unset | None = UNSET,
        avatar_url: str | Unset | None = UNSET,
        bio: str | Unset | None = UNSET,
        phone: str | Unset | None = UNSET,
        extra: dict[str, Any] | Unset = UNSET,
        user_token: str | None = None,
        *,
        timeout: float | None = None,
        max_retries: int | None = None,
    ) -> Profile:
        """Update the profile: arguments left out keep their value, ``None`` clears one.

        ``extra`` replaces the stored object as a whole.
        """
        body = update_fields(display_name=display_name, avatar_url=avatar_url, bio=bio, phone=phone, extra=extra)
        token, _, _ = self._acting_token("update_profile", user_token)
        data = await self._client.request(
            "PUT",
            "/api/portal/profile",
            body=body,
            auth="user",
            user_token=token,
            safe=True,
            timeout=timeout,
            max_retries=max_retries,
        )
        return cast(Profile, data)

    async def get_preferences(
        self, user_token: str | None = None, *, timeout: float | None = None, max_retries: int | None = None
    ) -> Preferences:
        """The signed-in user's preferences (defaults until changed)."""
        token, _, _ = self._acting_token("get_preferences", user_token)
        data = await self._client.request(
            "GET",
            "/api/portal/profile/preferences",
            auth="user",
            user_token=token,
            safe=True,
            timeout=timeout,
            max_retries=max_retries,
        )
        return cast(Preferences, data)

    async def update_preferences(
        self,
        theme: str | Unset = UNSET,
        language: str | Unset = UNSET,
        timezone: str | Unset = UNSET,
        sidebar_collapsed: bool | Unset = UNSET,
        notifications_enabled: bool | Unset = UNSET,
        email_notifications: bool | Unset = UNSET,
        extra: dict[str, Any] | Unset = UNSET,
        user_token: str | None = None,
        *,
        timeout: float | None = None,
        max_retries: int | None = None,
    ) -> Preferences:
        """Update preferences; arguments left out keep their value.

        ``theme`` is ``system``, ``light`` or ``dark``; ``language`` a BCP 47 tag; ``timezone`` an IANA name.
        """
        body = update_fields(
            theme=theme,
            language=language,
            timezone=timezone,
            sidebar_collapsed=sidebar_collapsed,
            notifications_enabled=notifications_enabled,
            email_notifications=email_notifications,
            extra=extra,
        )
        token, _, _ = self._acting_token("update_preferences", user_token)
        data = await self._client.request(
            "PUT",
            "/api/portal/profile/preferences",
            body=body,
            auth="user",
            user_token=token,
            safe=True,
            timeout=timeout,
            max_retries=max_retries,
        )
        return cast(Preferences, data)

    # --- navigation and page access ----------------------------------------------------------------------------

    async def get_navigation(
        self,
        user_token: str | None = None,
        *,
        as_service: bool = False,
        timeout: float | None = None,
        max_retries: int | None = None,
    ) -> Navigation:
        """The navigation tree for the subject and its active tenant (spec 8.9).

        Without a user session it raises :class:`AuthorizationError`; ``as_service=True`` gives the
        service's own navigation.
        """
        token, keep, _ = self._acting_token("get_navigation", user_token, as_service=as_service, service_form=True)
        data = await self._client.request(
            "GET",
            "/api/portal/nav",
            auth="service_or_user",
            user_token=token,
            keep_service_token=keep,
            safe=True,
            timeout=timeout,
            max_retries=max_retries,
        )
        return cast(Navigation, data)

    async def check_page_access(
        self,
        path: str,
        user_token: str | None = None,
        *,
        as_service: bool = False,
        timeout: float | None = None,
        max_retries: int | None = None,
    ) -> PageAccess:
        """Whether the subject may open the page at ``path`` (spec 8.8); ``reason`` says why not.

        Without a user session it raises :class:`AuthorizationError` (never the service's answer for a
        user); ``as_service=True`` asks whether the service itself may open it.
        """
        token, keep, _ = self._acting_token(
            "check_page_access", user_token, as_service=as_service, service_form=True
        )
        data = await self._client.request(
            "POST",
            "/api/portal/nav/check-access",
            body={"page_path": path},
            auth="service_or_user",
            user_token=token,
            keep_service_token=keep,
            safe=True,
            timeout=timeout,
            max_retries=max_retries,
        )
        return cast(PageAccess, data)

    # --- registration and invitations ----------------------------------------------------------------------------

    async def register(
        self,
        username: str,
        email: str,
        password: str,
        tenant_id: str,
        *,
        end_user_ip: str | None = None,
        end_user_agent: str | None = None,
        timeout: float | None = None,
        max_retries: int | None = None,
        idempotency_key: str | None = None,
    ) -> Registered:
        """Create a user in an active tenant (UUID or slug); a verification mail is sent when required."""
        data = await self._client.request(
            "POST",
            "/api/portal/register",
            body=_for_end_user(
                {"username": username, "email": email, "password": password, "tenant_id": tenant_id},
                end_user_ip,
                end_user_agent,
            ),
            keep_service_token=True,
            timeout=timeout,
            max_retries=max_retries,
            idempotency_key=idempotency_key,
        )
        return cast(Registered, data)

    async def verify_email(
        self,
        token: str,
        *,
        end_user_ip: str | None = None,
        end_user_agent: str | None = None,
        timeout: float | None = None,
        max_retries: int | None = None,
        idempotency_key: str | None = None,
    ) -> EmailVerified:
        """Activate a pending user with the token of a verification mail."""
        data = await self._client.request(
            "POST",
            "/api/portal/register/verify",
            body=_for_end_user({"token": token}, end_user_ip, end_user_agent),
            keep_service_token=True,
            timeout=timeout,
            max_retries=max_retries,
            idempotency_key=idempotency_key,
        )
        return cast(EmailVerified, data)

    async def resend_verification(
        self,
        email: str,
        *,
        end_user_ip: str | None = None,
        end_user_agent: str | None = None,
        timeout: float | None = None,
        max_retries: int | None = None,
        idempotency_key: str | None = None,
    ) -> VerificationResent:
        """Send a new verification mail to a pending user; always answers ``{"sent": True}``."""
        data = await self._client.request(
            "POST",
            "/api/portal/register/resend-verification",
            body=_for_end_user({"email": email}, end_user_ip, end_user_agent),
            keep_service_token=True,
            timeout=timeout,
            max_retries=max_retries,
            idempotency_key=idempotency_key,
        )
        return cast(VerificationResent, data)

    async def accept_invitation(
        self,
        token: str,
        password: str,
        *,
        end_user_ip: str | None = None,
        end_user_agent: str | None = None,
        timeout: float | None = None,
        max_retries: int | None = None,
    ) -> LoginResult:
        """Set an invited user's password with the invitation token and sign them in (the login shape).

        A ``remember_login`` client remembers the new session, as after :meth:`login`.
        """
        self._forget()
        data = await self._client.request(
            "POST",
            "/api/portal/register/accept-invitation",
            body=_for_end_user({"token": token, "password": password}, end_user_ip, end_user_agent),
            replay=False,
            keep_service_token=True,
            timeout=timeout,
            max_retries=max_retries,
        )
        self._remember(data)
        return cast(LoginResult, data)
