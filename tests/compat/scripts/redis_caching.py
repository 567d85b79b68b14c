"""The reference README's Redis Caching block."""

import asyncio
import os

os.environ["DOMINUS_TOKEN"] = "your-psk-token"

from dominus import dominus


async def main():
    # Key-value operations (TTL: min 60s, max 24h)
    await dominus.redis.set("user:123", {"name": "John"}, ttl=3600)
    value = await dominus.redis.get("user:123")
    await dominus.redis.delete("user:123")
    assert value["value"] == {"name": "John"}

    # Distributed locks
    worked = False
    if await dominus.redis.setnx("lock:job", "worker-1", ttl=60):
        try:
            # Do exclusive work
            worked = True
            assert not await dominus.redis.setnx("lock:job", "worker-2", ttl=60)  # held: falsy
        finally:
            await dominus.redis.delete("lock:job")
    assert worked

    # Counters
    await dominus.redis.incr("page:views", delta=1)
    assert (await dominus.redis.incr("page:views", delta=1))["value"] == 2

    # Hash operations
    await dominus.redis.hset("user:123", "email", "john@example.com", ttl=3600)
    email = await dominus.redis.hget("user:123", "email")
    assert email["value"] == "john@example.com"
    await dominus.aclose()
    print("ok")


asyncio.run(main())
