"""``FastCreate`` (``alien.manager.api.fast_create``) without a server: which requests it may
answer itself (``_parsed``), and that every other one reaches the app behind it untouched — the
same body bytes through ``receive()``, and the app's response is what the client gets."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

import pytest
from pydantic import BaseModel
from starlette.requests import Request

from alien.manager import tokens
from alien.manager.api.fast_create import MAX_FAST_BODY, PATH, FastCreate, _parsed
from alien.manager.commands.schemas import CommandCreate

TOKEN = tokens.issue(tokens.TokenKind.API_KEY).value
BODY = json.dumps({"deployment": "grp/dep", "command": "echo", "params": {"x": 1}}).encode()


def scope(
    *,
    method: str = "POST",
    path: str = PATH,
    query: bytes = b"",
    authorization: str | None = f"Bearer {TOKEN}",
    content_type: str | None = "application/json",
    app: Any = None,
) -> dict[str, Any]:
    headers = [(b"host", b"manager.test")]
    if authorization is not None:
        headers.append((b"authorization", authorization.encode("latin-1")))
    if content_type is not None:
        headers.append((b"content-type", content_type.encode("latin-1")))
    return {
        "type": "http",
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "server": ("manager.test", 80),
        "path": path,
        "root_path": "",
        "query_string": query,
        "headers": headers,
        "app": app,
    }


# --- _parsed ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "changes",
    [
        {"authorization": None},
        {"authorization": "Bearer abc"},
        {"authorization": "Bearer ax_key_nothex_" + "x" * 43},
        {"content_type": "text/plain"},
        {"content_type": None},
        {"query": b"wait=1&via=framework"},
        {"query": b"via=framework"},
        {"query": b"wait=-1"},
        {"query": b"wait=nan"},
        {"query": b"wait=inf"},
        {"query": b"wait=abc"},
        {"query": b"wait="},
        {"query": b"wait=%D9%A1"},  # an Arabic-Indic 1: float() reads it, the route does not
    ],
    ids=repr,
)
def test_parsed_refuses_what_only_the_route_may_answer(changes: dict[str, Any]) -> None:
    assert _parsed(Request(scope(**changes))) is None


def test_parsed_reads_the_first_of_repeated_headers_as_the_route_does() -> None:
    repeated = scope(authorization="Bearer not-a-token")
    repeated["headers"].append((b"authorization", f"Bearer {TOKEN}".encode()))
    assert _parsed(Request(repeated)) is None
    first_good = scope()
    first_good["headers"].append((b"authorization", b"Bearer not-a-token"))
    assert _parsed(Request(first_good)) == (TOKEN, 0.0)


@pytest.mark.parametrize("authorization", ["Basic dXNlcjpwdw==", "Bearer "])
def test_parsed_passes_on_a_header_that_is_not_bearer(authorization: str) -> None:
    assert _parsed(Request(scope(authorization=authorization))) is None


@pytest.mark.parametrize(
    ("changes", "wait"),
    [
        ({}, 0.0),
        ({"query": b"wait=2.5"}, 2.5),
        ({"query": b"wait=0"}, 0.0),
        ({"content_type": "application/json; charset=utf-8", "query": b"wait=10"}, 10.0),
    ],
    ids=repr,
)
def test_parsed_takes_an_eligible_request(changes: dict[str, Any], wait: float) -> None:
    assert _parsed(Request(scope(**changes))) == (TOKEN, wait)


# --- the middleware ---------------------------------------------------------------------------


@dataclass
class Downstream:
    """The app behind the middleware: reads the whole body, answers 418 with what it read."""

    calls: list[dict[str, Any]] = field(default_factory=list)
    bodies: list[bytes] = field(default_factory=list)

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        self.calls.append(scope)
        body = b""
        while True:
            message = await receive()
            assert message["type"] == "http.request"
            body += message.get("body", b"")
            if not message.get("more_body", False):
                break
        self.bodies.append(body)
        answer = f"downstream read {len(body)}".encode()
        await send({"type": "http.response.start", "status": 418, "headers": []})
        await send({"type": "http.response.body", "body": answer})


async def run(app: Any, request: dict[str, Any], chunks: list[bytes]) -> list[dict[str, Any]]:
    """Drive ``app`` with ``chunks`` as the request body; the messages it sent back."""
    messages = [
        {"type": "http.request", "body": c, "more_body": i < len(chunks) - 1}
        for i, c in enumerate(chunks)
    ]
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return messages.pop(0) if messages else {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await app(request, receive, send)
    return sent


def _split(data: bytes, size: int) -> list[bytes]:
    return [data[i : i + size] for i in range(0, len(data), size)]


BIG = json.dumps(
    {"deployment": "grp/dep", "command": "echo", "params": {"blob": "y" * (2 * MAX_FAST_BODY)}}
).encode()
CommandCreate.model_validate_json(BIG)  # valid: only its size sends it the framework's way

INELIGIBLE = {
    "bad json": (scope(), _split(b'{"deployment": "grp/dep", "comm', 7)),
    "invalid body": (scope(), [b'{"deployment": "grp/dep", "command": "echo", "x": 1}']),
    "not utf-8": (scope(), [b'{"deployment": "\xff"}']),
    "over the limit": (scope(), _split(BIG, 300_000)),
    "over the limit at once": (scope(), [BIG]),
    "extra param": (scope(query=b"wait=0&via=framework"), _split(BODY, 10)),
    "GET": (scope(method="GET"), [b""]),
    "other path": (scope(path="/v1/other"), [BODY]),
    "no token": (scope(authorization=None), [BODY]),
}


@pytest.mark.parametrize("case", INELIGIBLE)
async def test_an_ineligible_request_reaches_the_app_untouched(case: str) -> None:
    request, chunks = INELIGIBLE[case]
    downstream = Downstream()
    sent = await run(FastCreate(downstream), request, list(chunks))
    assert len(downstream.calls) == 1 and downstream.calls[0] is request
    assert downstream.bodies == [b"".join(chunks)]
    body = f"downstream read {len(b''.join(chunks))}".encode()
    assert sent == [
        {"type": "http.response.start", "status": 418, "headers": []},
        {"type": "http.response.body", "body": body},
    ]


class _View(BaseModel):
    id: str


class _Center:
    """Just enough of ``CommandCenter`` for the fast path: records what ``create`` was given."""

    def __init__(self) -> None:
        self.core = SimpleNamespace(settings=SimpleNamespace(max_wait=60.0))
        self.created: list[tuple[str, CommandCreate, float]] = []

    async def create(self, token: str, body: CommandCreate, *, wait: float) -> Any:
        self.created.append((token, body, wait))
        return SimpleNamespace(snapshot="snap", replayed=False)

    def view(self, snapshot: str, base_url: str) -> _View:
        return _View(id=f"{snapshot}@{base_url}")


async def test_an_eligible_request_is_answered_without_the_app() -> None:
    center = _Center()
    app = SimpleNamespace(state=SimpleNamespace(commands=center))
    downstream = Downstream()
    sent = await run(FastCreate(downstream), scope(query=b"wait=3", app=app), _split(BODY, 9))
    assert downstream.calls == []
    assert center.created == [(TOKEN, CommandCreate.model_validate_json(BODY), 3.0)]
    assert sent[0]["status"] == 201
    assert (b"content-type", b"application/json") in sent[0]["headers"]
    assert json.loads(sent[1]["body"]) == {"id": "snap@http://manager.test"}
