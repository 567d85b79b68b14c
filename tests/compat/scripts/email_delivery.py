"""The reference README's Email Delivery (Courier) block."""

import asyncio
import os

os.environ["DOMINUS_TOKEN"] = "your-psk-token"

from dominus import dominus


async def main():
    # Send email via Postmark template
    result = await dominus.courier.send(
        template_alias="welcome",
        to="user@example.com",
        from_email="noreply@myapp.com",
        model={"name": "John", "product_name": "My App"}
    )
    assert result["to"] == "user@example.com" and result["message_id"]

    # Convenience methods
    await dominus.courier.send_welcome(
        to="user@example.com",
        from_email="noreply@myapp.com",
        name="John",
        action_url="https://myapp.com/start",
        product_name="My App"
    )

    await dominus.courier.send_password_reset(
        to="user@example.com",
        from_email="noreply@myapp.com",
        name="John",
        reset_url="https://myapp.com/reset?token=abc",
        product_name="My App"
    )

    await dominus.courier.send_email_verification(
        to="user@example.com",
        from_email="noreply@myapp.com",
        name="John",
        verify_url="https://myapp.com/verify?token=xyz",
        product_name="My App"
    )

    await dominus.courier.send_invitation(
        to="invited@example.com",
        from_email="noreply@myapp.com",
        name="Invited User",
        invite_url="https://myapp.com/invite?token=abc",
        inviter_name="John",
        product_name="My App"
    )

    sent = await dominus.courier.outbox()
    assert [m["template_alias"] for m in sent["items"]] == [
        "invitation", "email-verification", "password-reset", "welcome", "welcome"
    ]
    assert sent["items"][2]["model"]["action_url"] == "https://myapp.com/reset?token=abc"
    await dominus.aclose()
    print("ok")


asyncio.run(main())
