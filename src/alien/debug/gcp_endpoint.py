"""The loopback endpoint ``gcloud`` talks to in a pull-model session that offers Google APIs.

``gcloud`` is pointed at it API by API (``CLOUDSDK_API_ENDPOINT_OVERRIDES_<API>=
http://127.0.0.1:PORT/<api>/``, see :func:`alien.debug.env.gcloud_env`) and authenticates with
the session's token as its access token. Each call goes through the tunnel as what it is — an
absolute-form request to ``https://<api>.googleapis.com`` — and the deployment's agent decides
whether that API is allowed and sends it with its own token (:mod:`alien.platforms.gcp.upstream`).
Storage uploads arrive at ``/upload/storage/…`` and ``/resumable/upload/storage/…`` on the
override's host, without the ``/storage`` prefix (a gcloud quirk), and are routed to the storage
API by that pattern.

Stdlib only beyond what ``alien debug`` already loads: this is on the session's set-up path.
"""

from __future__ import annotations

import contextlib
import re

from alien.debug.api_endpoint import api_endpoint
from alien.debug.proxy import LoopbackProxy
from alien.errors import NotFound
from alien.platforms.gcp.error_shape import google_error_response
from alien.protocol.http_exchange import Upstream

_API_PATH = re.compile(r"/([a-z0-9][a-z0-9-]{0,62})(/.*)?")
_UPLOADS = ("/upload/storage/", "/resumable/upload/storage/", "/batch/storage/")


def google_api_target(target: str) -> tuple[str, str]:
    """``(api, absolute target)`` for a path ``gcloud`` sent to its endpoint override."""
    if not (target.isascii() and target.isprintable()) or " " in target:
        raise NotFound("the request target is not a plain URL path", field="target")
    if target.startswith(_UPLOADS):
        return "storage", f"https://storage.googleapis.com{target}"
    match = _API_PATH.fullmatch(target.split("?", 1)[0])
    if match is None:
        raise NotFound(
            f"{target.split('?', 1)[0][:100]!r} names no Google API (expected /<api>/…)",
            field="target",
        )
    api = match[1]
    rest = target[len(api) + 1 :] or "/"
    return api, f"https://{api}.googleapis.com{rest}"


def _route(target: str) -> tuple[str, str]:
    api, absolute = google_api_target(target)
    return f"{api}.googleapis.com", absolute


async def google_api_endpoint(
    stack: contextlib.AsyncExitStack, upstream: Upstream, token: str
) -> LoopbackProxy:
    """Start the endpoint for the session (closed with ``stack``)."""
    return await api_endpoint(stack, upstream, token, _route, error_response=google_error_response)
