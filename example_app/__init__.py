"""The example app: a small real web application on ``dominus_fastapi``, run with ``python -m example_app``.

It uses only the package's public API (the ``dominus_fastapi`` root names, ``dominus_fastapi.deps`` and the
client's namespaces), so it runs unchanged on the embedded backend (the default chosen by
``python -m example_app``), on a ``dominus-local serve`` server, or on the hosted platform.
"""

from __future__ import annotations

from example_app.app import create_app

__all__ = ["create_app"]
