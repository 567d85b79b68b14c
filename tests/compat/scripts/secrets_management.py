"""The reference README's Secrets Management block."""

import asyncio
import os

os.environ["DOMINUS_TOKEN"] = "your-psk-token"

from dominus import NotFoundError, dominus


async def main():
    # Root-level shortcuts
    await dominus.upsert("API_KEY", "first-value", comment="First API key")
    value = await dominus.get("API_KEY")
    await dominus.upsert("API_KEY", "new-value", comment="Updated API key")

    # Full namespace
    await dominus.secrets.upsert("DB_HOST", "db.internal")
    await dominus.secrets.upsert("OLD_KEY", "obsolete")
    secrets = await dominus.secrets.list(prefix="DB_")
    await dominus.secrets.delete("OLD_KEY")

    assert value == "first-value"
    assert await dominus.get("API_KEY") == "new-value"
    assert await dominus.secrets.get("DB_HOST") == "db.internal"
    assert [s["key"] for s in secrets] == ["DB_HOST"]
    try:
        await dominus.get("OLD_KEY")
    except NotFoundError as e:
        assert e.status_code == 404
    else:
        raise AssertionError("OLD_KEY was deleted")
    await dominus.aclose()
    print("ok")


asyncio.run(main())
