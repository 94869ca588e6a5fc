"""Kubernetes-shaped error bodies (a ``Status`` object), so kubectl prints our refusals.

kubectl reads ``message`` from a ``{"kind": "Status", "status": "Failure", …}`` answer and prints
``Error from server (<reason>): <message>``.
"""

from __future__ import annotations

import json

from alien.errors import AlienError
from alien.protocol.http_exchange import RequestHead, UpstreamResponse

_REASONS = {
    400: "BadRequest",
    401: "Unauthorized",
    403: "Forbidden",
    404: "NotFound",
    409: "Conflict",
    422: "Invalid",
    429: "TooManyRequests",
    501: "NotImplemented",
    502: "ServiceUnavailable",
    503: "ServiceUnavailable",
    504: "Timeout",
}


def kubernetes_error_response(head: RequestHead, error: AlienError) -> UpstreamResponse:
    """``error`` as a Kubernetes ``Status`` (``head`` is unused: one shape for the whole API)."""
    status = {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": f"{error.message} ({error.code})",
        "reason": _REASONS.get(error.status, "InternalError"),
        "code": error.status,
    }
    return UpstreamResponse.from_bytes(
        error.status, [("content-type", "application/json")], json.dumps(status).encode()
    )
