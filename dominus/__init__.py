"""``from dominus import dominus``: the reference ``dominus`` SDK's entry point, on ``dominus_fastapi``.

Code written for the reference SDK (``from dominus import dominus``, then ``await dominus.db.query(...)``,
``await dominus.portal.login(...)``, ``await dominus.portal.me()``) runs on this package as written; the
differences are listed in ``docs/migration.md``. ``dominus`` here is a
:class:`~dominus_fastapi.core.default.DefaultDominus`:

- it reads ``DOMINUS_TOKEN``, ``DOMINUS_BASE_URL`` and the other settings at its first use, not at import, so
  a script may set ``os.environ`` after the import; after ``aclose()`` the next call opens it again;
- it works across several ``asyncio.run()`` calls (its pool follows the running event loop);
- it is **stateful**, like the reference SDK's object: it keeps the session of its last ``portal.login``
  (or ``portal.accept_invitation``), and the portal session calls (``me``, ``get_navigation``,
  ``check_page_access``, profile, preferences, sessions, ``change_password``, ``switch_tenant``, ``refresh``,
  ``logout``) act for that user; ``logout`` forgets it. That makes it an object for scripts, with one user at a
  time. In a web server, where the requests of many users share one client, use the stateless
  ``dominus_fastapi.dominus`` (or ``Dominus(...)``) and ``client.as_user(token)``.

This package shares its import name with the reference SDK: install one or the other in an environment, not
both (whichever is installed last owns ``dominus/``).
"""

from __future__ import annotations

from dominus_fastapi import __version__
from dominus_fastapi.core.client import Dominus
from dominus_fastapi.core.default import DefaultDominus
from dominus_fastapi.core.errors import (
    AuthenticationError,
    AuthorizationError,
    CircuitOpenError,
    ConflictError,
    DominusConnectionError,
    DominusError,
    DominusTimeoutError,
    NotFoundError,
    RateLimitError,
    SecureTableError,
    ServiceError,
    ValidationError,
)
from dominus_fastapi.core.secure import SecureAccessContext

__all__ = [
    "AuthenticationError",
    "AuthorizationError",
    "CircuitOpenError",
    "ConflictError",
    "Dominus",
    "DominusConnectionError",
    "DominusError",
    "DominusTimeoutError",
    "NotFoundError",
    "RateLimitError",
    "SecureAccessContext",
    "SecureTableError",
    "ServiceError",
    "ValidationError",
    "__version__",
    "dominus",
]

dominus: Dominus = DefaultDominus(remember_login=True)
"""The module-level client of the reference SDK: configured at first use, stateful for portal sessions."""
