"""The reference README's Structured Logging block: positional context, category, exception, batch with data."""

import asyncio
import os

os.environ["DOMINUS_TOKEN"] = "your-psk-token"

from dominus import ValidationError, dominus


def risky_operation():
    raise RuntimeError("disk full")


async def main():
    # Simple logging (auto-captures file and function)
    await dominus.logs.info("User logged in", {"user_id": "123"})
    await dominus.logs.error("Payment failed", {"order_id": "456"})

    # All log levels
    await dominus.logs.debug("Debug message", {"data": "..."})
    await dominus.logs.notice("Important notice", {})
    await dominus.logs.warn("Warning message", {})
    await dominus.logs.critical("Critical error", {})

    # With category
    await dominus.logs.info("Cache hit", {"key": "user:123"}, category="cache")

    # With exception context
    try:
        risky_operation()
    except Exception as e:
        await dominus.logs.error("Operation failed", {}, exception=e)

    # Batch logging
    result = await dominus.logs.batch([
        {"level": "info", "message": "Step 1 complete", "data": {"step": 1}},
        {"level": "info", "message": "Step 2 complete", "data": {}}
    ])
    assert (result["stored"], result["failed"]) == (2, 0)

    # Query logs
    errors = await dominus.logs.query(level="error", limit=100)

    assert {e["message"] for e in errors} == {"Payment failed", "Critical error", "Operation failed"}
    failed = next(e for e in errors if e["message"] == "Operation failed")
    assert failed["context"]["exception"] == {"type": "RuntimeError", "message": "disk full"}
    assert failed["function"] == "main"
    step = (await dominus.logs.query(search="Step 1 complete"))[0]
    assert step["context"] == {"step": 1}  # "data" is kept, as the context
    cache = (await dominus.logs.query(category="cache"))[0]
    assert cache["context"] == {"key": "user:123"}

    # Never stored without a field: an unknown key is refused before sending.
    try:
        await dominus.logs.batch([{"level": "info", "message": "x", "payload": {}}])
    except ValidationError as e:
        assert e.details["field"] == "events[0].payload"
    else:
        raise AssertionError("an unknown key is refused")
    await dominus.aclose()
    print("ok")


asyncio.run(main())
