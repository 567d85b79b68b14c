"""Fixtures of the FastAPI integration tests: the project's own testing kit and the app under test.

The kit's fixtures are imported here by name (rather than through ``pytest_plugins``) so that these tests
work both before and after the ``dominus_fastapi.testing`` entry point is installed: a conftest fixture
simply shadows the plugin's fixture of the same name, whereas a second registration of the plugin module
would be an error.
"""

from __future__ import annotations

from typing import Any

import pytest

from dominus_fastapi.testing import (  # noqa: F401
    dominus,
    dominus_app_client,
    dominus_asgi_app,
    dominus_base_url,
    dominus_seed_demo,
    dominus_user_client,
)
from tests.fastapi.apps import build_app


@pytest.fixture
def dominus_app() -> Any:
    return build_app()
