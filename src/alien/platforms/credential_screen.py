"""What the agent's channels share to refuse a request that would mint a credential, or open a
standing way in, outliving the debug session: the refusal itself, and the bounded read of a body
that must be read to know.

A debug session is short-lived and revocable; a token, key or certificate made in it, or a
binding granting an outside principal access, would not be. Each channel lists what it refuses
(:mod:`alien.platforms.aws.credential_operations`,
:mod:`alien.platforms.kubernetes.credential_operations`,
:mod:`alien.platforms.gcp.credential_operations`) and refuses it before any connection is made;
a request whose meaning cannot be told for certain is refused too (fail closed).
"""

from __future__ import annotations

from alien.errors import Forbidden, PayloadTooLarge
from alien.protocol.http_exchange import Body

CREDENTIAL_MINTING_REFUSED = "CREDENTIAL_MINTING_REFUSED"


def minting_refused(what: str) -> Forbidden:
    """The refusal of a request that does ``what`` (a clause: ``"TokenRequest mints a service
    account token"``)."""
    return Forbidden(
        f"{what}, which would outlive the debug session: it is refused",
        field="operation",
        code=CREDENTIAL_MINTING_REFUSED,
    )


def minting_uncertain(why: str) -> Forbidden:
    """The refusal of a request that might mint a credential, and cannot be told for certain."""
    return Forbidden(
        f"whether this request mints a credential cannot be told for certain ({why}); it is "
        "refused in a debug session",
        field="operation",
        code=CREDENTIAL_MINTING_REFUSED,
    )


async def read_whole(body: Body, limit: int, what: str) -> bytes:
    """All of ``body``, or ``PayloadTooLarge`` as soon as it passes ``limit`` bytes (``what``
    names it: ``"a Secret"``), the rest left unread."""
    whole = bytearray()
    async for chunk in body:
        whole += chunk
        if len(whole) > limit:
            raise PayloadTooLarge(
                f"{what} over {limit} bytes is refused in a debug session", field="body"
            )
    return bytes(whole)
