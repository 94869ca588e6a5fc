"""Google-shaped error bodies, so that a refusal prints as a readable error in gcloud.

Google APIs answer errors as ``{"error": {"code": <HTTP status>, "message": …, "status":
<canonical code name>}}``, and gcloud prints ``message`` (with the status name) from that shape.
Our own refusals on a Google API call use it too, so ``gcloud pubsub topics list`` says why it
was refused instead of failing to parse alien's JSON.
"""

from __future__ import annotations

import json

from alien.errors import AlienError
from alien.protocol.http_exchange import RequestHead, UpstreamResponse

_STATUS_NAMES = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    409: "ABORTED",
    413: "OUT_OF_RANGE",
    422: "INVALID_ARGUMENT",
    429: "RESOURCE_EXHAUSTED",
    502: "UNAVAILABLE",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}


def google_error_response(head: RequestHead, error: AlienError) -> UpstreamResponse:
    """``error`` as a Google API error (``head`` is unused: one shape for every Google API)."""
    body = {
        "error": {
            "code": error.status,
            "message": f"{error.message} ({error.code})",
            "status": _STATUS_NAMES.get(
                error.status, "INTERNAL" if error.status >= 500 else "FAILED_PRECONDITION"
            ),
        }
    }
    content = json.dumps(body).encode()
    return UpstreamResponse.from_bytes(
        error.status, [("content-type", "application/json; charset=UTF-8")], content
    )
