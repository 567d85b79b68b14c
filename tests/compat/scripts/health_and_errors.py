"""The reference README's Health Checks and Error Handling blocks."""

import asyncio
import os

os.environ["DOMINUS_TOKEN"] = "your-psk-token"

from dominus import (
    dominus,
    DominusError,
    AuthenticationError,
    AuthorizationError,
    NotFoundError,
    ValidationError,
    ConflictError,
    ServiceError,
    SecureTableError,
    DominusConnectionError,  # Renamed to avoid shadowing built-in
    DominusTimeoutError,     # Renamed to avoid shadowing built-in
)


async def main():
    # Basic health check
    status = await dominus.health.check()
    assert status["status"] == "healthy"

    caught = []
    try:
        user = await dominus.auth.get_user(user_id="00000000-0000-4000-8000-000000000000")
    except NotFoundError as e:
        caught.append(f"User not found: {e.message}")
    except SecureTableError as e:
        print("Secure table requires 'reason' and 'actor' parameters")
    except AuthenticationError as e:
        print("Invalid or expired token")
    except AuthorizationError as e:
        print("Insufficient permissions")
    except ValidationError as e:
        print(f"Invalid request: {e.message}")
    except TimeoutError as e:
        print("Request timed out")
    except DominusError as e:
        print(f"Error {e.status_code}: {e.message}")
        if e.details:
            print(f"Details: {e.details}")
    assert len(caught) == 1 and caught[0].startswith("User not found")

    # `except TimeoutError` (the built-in) catches DominusTimeoutError.
    await dominus.admin.set_faults(latency_ms=500, paths=["/api/whisperer"])
    try:
        await dominus.redis.get("slow", timeout=0.1, max_retries=0)
    except TimeoutError as e:
        assert isinstance(e, DominusTimeoutError) and isinstance(e, DominusError)
    else:
        raise AssertionError("the call timed out")
    await dominus.admin.set_faults()

    assert issubclass(DominusConnectionError, ConnectionError)
    assert issubclass(ConflictError, DominusError) and issubclass(ServiceError, DominusError)
    await dominus.aclose()
    print("ok")


asyncio.run(main())
