"""The reference README's Authentication & Authorization (Guardian) block."""

import asyncio
import os

os.environ["DOMINUS_TOKEN"] = "your-psk-token"

from dominus import AuthenticationError, NotFoundError, dominus


async def main():
    # User management
    users = await dominus.auth.list_users()
    admin = next(u for u in users["items"] if u["username"] == "admin")
    user = await dominus.auth.get_user(user_id=admin["id"])
    assert user["email"] == "admin@example.com"

    new_user = await dominus.auth.add_user(
        username="john",
        password="secure-password",
        email="john@example.com"
    )

    await dominus.auth.update_user(new_user["id"], status="inactive")
    assert (await dominus.auth.get_user(new_user["id"]))["status"] == "inactive"
    await dominus.auth.update_user(new_user["id"], status="active")
    await dominus.auth.delete_user(new_user["id"])
    try:
        await dominus.auth.get_user(new_user["id"])
    except NotFoundError:
        pass
    else:
        raise AssertionError("the user was deleted")

    # Role management
    await dominus.auth.create_scope("read", "Read")
    await dominus.auth.create_scope("write", "Write")
    await dominus.auth.create_scope("publish", "Publish")
    roles = await dominus.auth.list_roles()
    role = await dominus.auth.add_role(
        name="Editor",
        scope_slugs=["read", "write", "publish"]
    )
    assert {"admin", "member", "analyst"} <= {r["name"] for r in roles["items"]}
    assert role["name"] == "Editor"

    # Scope management
    scopes = await dominus.auth.list_scopes()
    assert {"read", "write", "publish", "users.manage"} <= {s["slug"] for s in scopes["items"]}

    # Tenant management
    tenants = await dominus.auth.list_tenants()
    categories = await dominus.auth.list_tenant_categories()
    assert {"acme", "globex"} <= {t["slug"] for t in tenants["items"]}
    assert {"healthcare", "retail"} <= {c["slug"] for c in categories["items"]}

    # JWT operations
    jwt = await dominus.auth.mint_jwt(user_id=user["id"], expires_in=900)
    token = jwt["access_token"]
    claims = await dominus.auth.validate_jwt(token)
    assert claims["sub"] == user["id"]

    # Signatures are checked (the reference SDK decoded without checking and raised ValueError).
    forged = token[:-4] + ("AAAA" if not token.endswith("AAAA") else "BBBB")
    try:
        await dominus.auth.validate_jwt(forged)
    except AuthenticationError:
        pass
    else:
        raise AssertionError("a forged signature is refused")
    await dominus.aclose()
    print("ok")


asyncio.run(main())
