"""Azure Storage-shaped error bodies, so that a refusal prints as a readable error in ``az``.

Azure Storage answers errors as XML — ``<Error><Code>…</Code><Message>…</Message></Error>`` —
with the code in the ``x-ms-error-code`` header too, and the Azure SDK under ``az storage``
builds its message from them. Our own refusals on a storage call use that shape, so ``az storage
blob list`` says why it was refused instead of "Operation returned an invalid status".
"""

from __future__ import annotations

from xml.sax.saxutils import escape

from alien.errors import AlienError
from alien.protocol.http_exchange import RequestHead, UpstreamResponse


def azure_error_response(head: RequestHead, error: AlienError) -> UpstreamResponse:
    """``error`` as an Azure Storage error (``head`` is unused: one shape for every call)."""
    body = (
        '<?xml version="1.0" encoding="utf-8"?>'
        f"<Error><Code>{escape(error.code)}</Code>"
        f"<Message>{escape(error.message)}</Message></Error>"
    ).encode()
    headers = [("content-type", "application/xml"), ("x-ms-error-code", error.code)]
    return UpstreamResponse.from_bytes(error.status, headers, body)
