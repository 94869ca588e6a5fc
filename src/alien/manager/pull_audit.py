"""The audit of a pull-model debug session: what the manager learns of each request it passes to
the deployment's agent, without taking part in it.

In the pull model the agent answers the CLI's requests; the manager only sees their bytes go by
— spliced frame by frame (:mod:`alien.tunnel.splice`, observed by :class:`SplicedAudit`), or
relayed stream by stream for agents that predate splicing
(:func:`alien.manager.debug_tunnel.relay_to_agent`). Either way each HTTP exchange becomes a
:class:`RelayedExchange` — the request head (from the stream's OPEN), the start of a form body
(to name an AWS query-protocol operation), the response head, the bytes each way and the time it
took — and, once it ended, one :class:`~alien.manager.services.debug_sessions.RequestRecord`.
"""

from __future__ import annotations

from typing import Any

from alien.errors import AlienError
from alien.manager.aws_operations import PEEK_LIMIT, operation_from_head, operation_in_form
from alien.manager.debug_audit import ExchangeTally, RequestRecorder
from alien.manager.services.debug_sessions import RequestRecord
from alien.platforms.aws.sigv4 import caller_scope
from alien.platforms.azure.upstream import azure_blob_account, blob_operation
from alien.platforms.gcp.upstream import google_api
from alien.platforms.kubernetes.upstream import is_kubernetes_api
from alien.protocol.frame_scan import Payload, ScanEvent
from alien.protocol.frames import End, ErrorCode, MetadataError, Open, Reset, decode_meta
from alien.protocol.http_exchange import ERROR_HEADER, RequestHead, ResponseHead
from alien.tunnel.http_heads import MAX_HEAD_BYTES, parse_request_meta, parse_response_head

TUNNEL_ENDED = "the tunnel closed under it"


class RelayedExchange(ExchangeTally):
    """One HTTP exchange passed to an agent, as the manager saw it (see the module docstring)."""

    def __init__(self, head: RequestHead) -> None:
        super().__init__(head, *_classify(head))
        self._peek = (  # AWS requests alone are in origin form, and some name it in the body
            head.target.startswith("/")
            and self.service != "unknown"
            and operation_from_head(self.service, head) is None
        )
        self._request = bytearray()
        self._response = bytearray()
        self._head_size: int | None = None
        self._head: ResponseHead | None = None  # parsed once its bytes are all here

    @classmethod
    def start(cls, meta: dict[str, Any]) -> RelayedExchange | None:
        """An exchange for an HTTP stream; ``None`` for other kinds (passed on, not audited)."""
        if meta.get("kind") != "http":
            return None
        try:
            return cls(parse_request_meta(meta))
        except AlienError:
            return None  # the agent refuses it the same way

    def saw_request(self, chunk: bytes | memoryview) -> None:
        self.bytes_in += len(chunk)
        if self._peek and len(self._request) < PEEK_LIMIT:
            self._request += chunk[: PEEK_LIMIT - len(self._request)]

    def saw_response(self, chunk: bytes | memoryview) -> None:
        """Keep the response's first bytes until its length-prefixed head is complete."""
        self.bytes_out += len(chunk)
        view = memoryview(chunk)
        while view and (wanted := self._head_wanted()) > 0:
            self._response += view[:wanted]
            view = view[wanted:]
            if self._head_size is None and len(self._response) >= 4:
                length = int.from_bytes(self._response[:4], "big")
                self._head_size = 4 + min(length, MAX_HEAD_BYTES)

    def _head_wanted(self) -> int:
        size = self._head_size if self._head_size is not None else 4
        return size - len(self._response)

    @property
    def upgraded(self) -> bool:
        """The server switched protocols (``101``): the stream carried raw bytes after."""
        head = self._response_head()
        return head is not None and head.status == 101

    def _response_head(self) -> ResponseHead | None:
        if self._head is not None:
            return self._head
        if self._head_size is None or len(self._response) < self._head_size:
            return None
        if int.from_bytes(self._response[:4], "big") > MAX_HEAD_BYTES:
            return None
        try:
            self._head = parse_response_head(bytes(self._response[4:]))
        except AlienError:
            return None
        return self._head

    def record(self, failure: str | None) -> RequestRecord:
        """The audit record; ``failure``: why the exchange ended early, if it did."""
        if self._peek:
            seen = bytes(self._request)
            self.operation = operation_in_form(self.head, seen, ended=len(seen) < PEEK_LIMIT)
        head = self._response_head()
        if head is None:
            return self.failed(f"no response: {failure or 'the agent sent no head'}")
        code = head.get(ERROR_HEADER)
        return self.request_record(
            head.status,
            bytes_out=max(0, self.bytes_out - (self._head_size or 0)),
            refused=code is not None and head.status == 403,
            error=code or (f"cut short: {failure}" if failure else None),
        )

    def failed(self, error: str) -> RequestRecord:
        return self.request_record(502, bytes_out=0, refused=False, error=error)


class _Tracked:
    """A spliced exchange and which sides have ended it."""

    __slots__ = ("exchange", "request_ended", "response_ended")

    def __init__(self, exchange: RelayedExchange) -> None:
        self.exchange = exchange
        self.request_ended = False
        self.response_ended = False


class SplicedAudit:
    """The observer of a spliced session (:class:`alien.tunnel.splice.TunnelSplice`): one
    :class:`RelayedExchange` per HTTP stream the CLI opens, recorded once both sides ended it,
    either side reset it, or the tunnel ended (:meth:`finish`)."""

    def __init__(self, recorder: RequestRecorder) -> None:
        self._recorder = recorder
        self._open: dict[int, _Tracked] = {}

    def __call__(self, event: ScanEvent, from_client: bool) -> None:
        if isinstance(event, Payload):
            tracked = self._open.get(event.stream_id)
            if tracked is not None:
                if from_client:
                    tracked.exchange.saw_request(event.data)
                else:
                    tracked.exchange.saw_response(event.data)
        elif isinstance(event, Open):
            if from_client:
                self._opened(event)
        elif isinstance(event, End):
            self._ended(event.stream_id, from_client)
        elif isinstance(event, Reset):
            self._reset(event, from_client)

    def _opened(self, event: Open) -> None:
        try:
            meta = decode_meta(event.meta)
        except MetadataError:
            return  # the agent resets it (INVALID_METADATA): nothing was asked of it
        exchange = RelayedExchange.start(meta)
        if exchange is not None:
            self._open[event.stream_id] = _Tracked(exchange)

    def _ended(self, stream_id: int, from_client: bool) -> None:
        tracked = self._open.get(stream_id)
        if tracked is None:
            return
        if from_client:
            tracked.request_ended = True
        else:
            tracked.response_ended = True
        if tracked.request_ended and tracked.response_ended:
            self._record(stream_id, None)

    def _reset(self, event: Reset, from_client: bool) -> None:
        tracked = self._open.get(event.stream_id)
        if tracked is None:
            return
        # NO_ERROR: the agent answered before reading the whole request, as HTTP/2 allows. An
        # upgraded connection (kubectl exec) ends when its client leaves: no failure either.
        ended = event.code == ErrorCode.NO_ERROR or (from_client and tracked.exchange.upgraded)
        self._record(event.stream_id, None if ended else event.reason or "reset")

    def _record(self, stream_id: int, failure: str | None) -> None:
        tracked = self._open.pop(stream_id)
        self._recorder.add(tracked.exchange.record(failure))

    def finish(self) -> None:
        """The tunnel ended: record what was still under way (cut short)."""
        for stream_id in list(self._open):
            self._record(stream_id, TUNNEL_ENDED)


def _classify(head: RequestHead) -> tuple[str, str]:
    """``(service, operation)`` of a relayed request: a Google API call (absolute form to
    ``<api>.googleapis.com``) is ``gcp/<api>`` with method and path, a Kubernetes API call
    (to ``kubernetes.default.svc``) ``kubernetes`` with method and path, an Azure Blob storage
    call (to ``<account>.blob.core.windows.net``) ``azure/blob`` with method, path and the
    operation's query parameters (:func:`blob_operation`); other HTTP egress (a
    forward-proxy request in absolute form, or CONNECT) is ``http`` with method and destination
    (never the query); an AWS request is its signing name and operation; anything else
    ``unknown``."""
    if head.method == "CONNECT":
        return "http", f"CONNECT {head.target}"
    if head.target.startswith(("http://", "https://")):
        url = head.target.partition("?")[0]
        path = "/" + url.split("/", 3)[3] if url.count("/") >= 3 else "/"
        api = google_api(head.target)
        if api is not None:
            return f"gcp/{api}", f"{_google_method(head)} {path}"
        if is_kubernetes_api(head.target):
            return "kubernetes", f"{head.method} {path}"
        if azure_blob_account(head.target) is not None:
            return "azure/blob", blob_operation(head)
        return "http", f"{head.method} {url}"
    try:
        service = caller_scope(head.target, head.headers).service
    except AlienError:
        return "unknown", f"{head.method} /"
    return service, operation_from_head(service, head) or "unknown"


def _google_method(head: RequestHead) -> str:
    """The method a Google API will act on, as the trail should name it: Google honours
    ``X-HTTP-Method-Override`` (``gcloud`` sends a long GET as a POST with it), so a DELETE sent
    as a POST is recorded ``POST as DELETE``, not as the harmless-looking wire method."""
    overrides = head.get_all("x-http-method-override")
    return f"{head.method} as {'/'.join(overrides)}" if overrides else head.method
