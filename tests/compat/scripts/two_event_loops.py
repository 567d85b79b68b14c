"""A script that calls ``asyncio.run`` twice on the module-level client, closing it in between once."""

import asyncio
import os

os.environ["DOMINUS_TOKEN"] = "your-psk-token"

from dominus import dominus


async def first():
    await dominus.upsert("greeting", "hello")
    session = await dominus.portal.login("demo", "dominus-user")
    return session["session_id"]


async def second(session_id):
    assert await dominus.get("greeting") == "hello"
    assert (await dominus.portal.me())["session_id"] == session_id  # the session outlives the loop
    await dominus.aclose()
    assert dominus.closed


async def third():
    assert await dominus.get("greeting") == "hello"  # reopened from the environment on use
    await dominus.aclose()


session_id = asyncio.run(first())
asyncio.run(second(session_id))
asyncio.run(third())
print("ok")
