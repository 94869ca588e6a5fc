"""What the sync and async clients share: headers, request arguments, decoding answers."""

from __future__ import annotations

from typing import Any, TypeVar

import httpx
import pydantic

from alien.client.call import Call
from alien.client.config import USER_AGENT, ClientConfig, headers
from alien.client.errors import BadResponse, error_from_response

__all__ = ["CHUNK_BYTES", "USER_AGENT", "decode", "headers", "request_args", "timeout_for"]

T = TypeVar("T")

CHUNK_BYTES = 256 * 1024


def timeout_for(config: ClientConfig, call_timeout: float | None = None) -> httpx.Timeout:
    read = call_timeout if call_timeout is not None else config.timeout
    return httpx.Timeout(config.timeout, read=read, connect=min(config.timeout, 10.0))


def request_args(config: ClientConfig, call: Call[Any]) -> dict[str, Any]:
    args: dict[str, Any] = {"method": call.method, "url": call.path}
    if call.params:
        args["params"] = call.params
    if call.json is not None:
        args["json"] = call.json
    if call.timeout is not None:
        args["timeout"] = timeout_for(config, call.timeout)
    return args


def decode(call: Call[T], response: httpx.Response) -> T:
    """The call's result, or the error the manager answered (as an ``AlienError`` subclass)."""
    if response.status_code >= 400:
        raise error_from_response(response)
    try:
        data = response.json() if response.content else None
        return call.decode(data)
    except (ValueError, KeyError, TypeError, pydantic.ValidationError) as exc:
        raise BadResponse(
            f"unexpected answer to {call.method} {call.path}: {type(exc).__name__}",
            field="response",
        ) from None
