"""The reference README's Quick Start: the import comes before the token is set."""

import asyncio

from dominus import dominus
import os

# Set your token (or use DOMINUS_TOKEN environment variable)
os.environ["DOMINUS_TOKEN"] = "your-psk-token"


async def main():
    await dominus.upsert("DATABASE_URL", "postgresql://db.example.com/app")
    await dominus.ddl.add_table("users", [
        {"name": "id", "type": "SERIAL", "constraints": ["PRIMARY KEY"]},
        {"name": "email", "type": "VARCHAR(200)"},
        {"name": "name", "type": "VARCHAR(100)"},
        {"name": "status", "type": "VARCHAR(20)", "default": "'active'"},
    ])
    await dominus.db.insert("users", {"email": "john@example.com", "name": "John Doe"})
    data = b"%PDF-1.4 quarterly report"
    user_id = "123"

    # Secrets
    db_url = await dominus.get("DATABASE_URL")

    # Database queries
    users = await dominus.db.query("users", filters={"status": "active"})

    # Redis caching
    await dominus.redis.set("session:123", {"user": "john"}, ttl=3600)

    # File storage
    result = await dominus.files.upload(data, "report.pdf", category="reports")

    # Structured logging
    await dominus.logs.info("User logged in", {"user_id": "123"})

    assert db_url == "postgresql://db.example.com/app"
    assert users["total"] == 1 and users["rows"][0]["name"] == "John Doe"
    assert (await dominus.redis.get("session:123"))["value"] == {"user": "john"}
    assert result["size"] == len(data) and result["filename"] == "report.pdf"
    entry = (await dominus.logs.query(search="User logged in"))[0]
    assert entry["context"] == {"user_id": user_id}
    await dominus.aclose()
    print("ok")


asyncio.run(main())
