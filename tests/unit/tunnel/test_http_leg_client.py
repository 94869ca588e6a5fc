"""The agent's end of an HTTP tunnel leg (``alien.tunnel.http_leg``) against a scripted manager
(httpx's ``MockTransport``): answers that are not the manager's end the leg at once, instead
of leaving ``recv`` blocked and ``send`` swallowing messages."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable

import httpx
import pytest

from alien.protocol.tunnel_leg import encode_batch
from alien.tunnel.errors import TunnelClosed
from alien.tunnel.http_leg import HttpLegClient

PATH = "/v1/agent/debug-tunnels/dbg_aaaaaaaaaaaaaaaaaaaaaaaaaa"
Handler = Callable[[httpx.Request], httpx.Response]


def _nothing_yet(request: httpx.Request) -> httpx.Response:
    return httpx.Response(200, content=b"", headers={"alien-leg-first": "0"})


async def _open(down: Handler, up: Handler | None = None) -> tuple[HttpLegClient, list[str]]:
    seen: list[str] = []

    async def answer(request: httpx.Request) -> httpx.Response:
        seen.append(f"{request.method} {request.url.path} {request.headers.get('alien-leg')}")
        if request.method == "POST" and request.url.path.endswith("/http"):
            return httpx.Response(201, json={"leg_id": "the-leg"})
        if request.url.path.endswith("/down"):
            await asyncio.sleep(0.02)  # a long poll: the manager answers when it has something
            return down(request)
        if request.url.path.endswith("/up") and up is not None:
            return up(request)
        return httpx.Response(204)

    leg = await HttpLegClient.open(
        "http://manager",
        PATH,
        {"Authorization": "Bearer ax_dep_x", "alien-tunnel-credential": "c"},
        timeout=5,
        transport=httpx.MockTransport(answer),
    )
    return leg, seen


async def _ends(leg: HttpLegClient, why: str) -> None:
    with pytest.raises(TunnelClosed, match=why):
        await asyncio.wait_for(leg.recv(), 2)
    with pytest.raises(TunnelClosed):
        await leg.send(b"more")
    await leg.abort()


@pytest.mark.parametrize(
    "down",
    [
        lambda r: httpx.Response(200, content=b"<html>proxy says hi</html>"),  # no numbering
        lambda r: httpx.Response(200, content=b"\x00\x00", headers={"alien-leg-first": "0"}),
        lambda r: httpx.Response(
            200, content=encode_batch([b"x"]), headers={"alien-leg-first": "5"}
        ),
    ],
    ids=["not-ours", "broken-batch", "gap"],
)
async def test_a_down_answer_that_is_not_the_managers_ends_the_leg(down: Handler) -> None:
    leg, _ = await _open(down)
    await _ends(leg, "down answer made no sense")


async def test_an_up_answer_that_is_not_the_managers_ends_the_leg() -> None:
    leg, _ = await _open(_nothing_yet, up=lambda r: httpx.Response(200, content=b"not json"))
    await leg.send(b"hello")
    await _ends(leg, "up answer made no sense")


async def test_messages_flow_and_the_leg_id_travels_in_a_header_only() -> None:
    sent: list[bytes] = []
    delivered = False

    def down(request: httpx.Request) -> httpx.Response:
        nonlocal delivered
        first = 0 if not delivered else 1
        body = encode_batch([b"from-manager"]) if not delivered else b""
        delivered = True
        return httpx.Response(200, content=body, headers={"alien-leg-first": str(first)})

    def up(request: httpx.Request) -> httpx.Response:
        sent.append(request.content)
        return httpx.Response(200, json={"received": int(request.url.params["seq"]) + 1})

    leg, seen = await _open(down, up)
    assert await asyncio.wait_for(leg.recv(), 2) == b"from-manager"
    await leg.send(b"from-agent")
    for _ in range(100):
        if sent:
            break
        await asyncio.sleep(0.01)
    assert sent == [encode_batch([b"from-agent"])]
    await leg.close()
    assert all("the-leg" not in line.split(" ")[1] for line in seen)  # never in a path
    assert all(line.endswith(" the-leg") for line in seen[1:])
    assert seen[-1].startswith("DELETE")


async def test_a_gone_leg_ends_quietly() -> None:
    leg, _ = await _open(lambda r: httpx.Response(410, content=json.dumps({}).encode()))
    await _ends(leg, "closed the tunnel")
