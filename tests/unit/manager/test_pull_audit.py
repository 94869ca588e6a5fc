"""The audit of a spliced pull-model session, fed the frames a splice shows it."""

from __future__ import annotations

import json

from alien.manager.pull_audit import TUNNEL_ENDED, SplicedAudit
from alien.manager.services.debug_sessions import RequestRecord
from alien.protocol.frame_scan import Payload
from alien.protocol.frames import End, ErrorCode, Open, Reset
from alien.protocol.http_exchange import ERROR_HEADER, RequestHead, ResponseHead
from alien.tunnel.http_heads import encode_response_head, request_meta


class Recorded(list[RequestRecord]):
    """Where the audit's records go (the manager's recorder writes them to the trail)."""

    def add(self, record: RequestRecord) -> None:
        self.append(record)


def opened(stream_id: int, method: str, target: str, *headers: tuple[str, str]) -> Open:
    meta = request_meta(RequestHead.create(method, target, [("host", "x"), *headers]))
    return Open(stream_id, json.dumps(meta).encode())


def data(stream_id: int, raw: bytes) -> Payload:
    return Payload(stream_id, memoryview(raw))


def response(status: int, *headers: tuple[str, str]) -> bytes:
    return encode_response_head(ResponseHead.create(status, list(headers)))


def test_an_exchange_is_recorded_once_both_sides_ended_it() -> None:
    recorded = Recorded()
    audit = SplicedAudit(recorded)  # type: ignore[arg-type]
    audit(opened(1, "POST", "http://svc.internal/items?token=secret"), True)
    audit(data(1, b"x" * 100), True)
    audit(End(1), True)
    head = response(201)
    audit(data(1, head[:3]), False)  # the head may come in pieces
    audit(data(1, head[3:] + b"y" * 50), False)
    audit(data(1, b"y" * 25), False)
    assert recorded == []
    audit(End(1), False)
    (record,) = recorded
    assert (record.service, record.operation) == ("http", "POST http://svc.internal/items")
    assert (record.status, record.bytes_in, record.bytes_out) == (201, 100, 75)
    assert record.error is None and not record.refused


def test_a_refusal_by_the_agent_is_marked_refused() -> None:
    recorded = Recorded()
    audit = SplicedAudit(recorded)  # type: ignore[arg-type]
    audit(opened(3, "GET", "http://elsewhere.example/"), True)
    audit(End(3), True)
    audit(data(3, response(403, (ERROR_HEADER, "DESTINATION_NOT_ALLOWED"))), False)
    audit(End(3), False)
    (record,) = recorded
    assert record.refused and record.error == "DESTINATION_NOT_ALLOWED"


def test_resets_and_the_tunnel_end_cut_exchanges_short() -> None:
    recorded = Recorded()
    audit = SplicedAudit(recorded)  # type: ignore[arg-type]
    for stream_id in (1, 3, 5, 7):
        audit(opened(stream_id, "GET", f"http://svc.internal/{stream_id}"), True)
    audit(data(1, response(200) + b"partial"), False)
    audit(Reset(1, ErrorCode.CANCEL, "the client went away"), True)
    audit(data(3, response(200)), False)
    audit(End(3), False)
    audit(Reset(3, ErrorCode.NO_ERROR, ""), False)  # answered before reading the request: fine
    audit(Reset(5, ErrorCode.CANCEL, "no upstream"), False)
    audit.finish()
    by_target = {r.operation.rsplit("/", 1)[1]: r for r in recorded}
    assert (
        by_target["1"].status == 200 and by_target["1"].error == "cut short: the client went away"
    )
    assert by_target["3"].status == 200 and by_target["3"].error is None
    assert by_target["5"].status == 502 and "no upstream" in (by_target["5"].error or "")
    assert by_target["7"].status == 502 and TUNNEL_ENDED in (by_target["7"].error or "")
    assert len(recorded) == 4


def test_streams_that_are_not_http_or_not_the_clients_are_not_audited() -> None:
    recorded = Recorded()
    audit = SplicedAudit(recorded)  # type: ignore[arg-type]
    audit(Open(1, b'{"kind": "debug_info"}'), True)
    audit(Open(3, b"not json"), True)
    audit(opened(2, "GET", "http://svc.internal/"), False)  # the server opens nothing we audit
    for stream_id in (1, 2, 3):
        audit(End(stream_id), True)
        audit(End(stream_id), False)
    audit.finish()
    assert recorded == []


def test_an_upgraded_connection_the_client_leaves_ended_normally() -> None:
    recorded = Recorded()
    audit = SplicedAudit(recorded)  # type: ignore[arg-type]
    audit(opened(1, "GET", "https://kubernetes.default.svc/api/v1/namespaces/x/pods/p/exec"), True)
    audit(data(1, response(101, ("upgrade", "websocket")) + b"\x01output"), False)
    audit(data(1, b"\x00stdin"), True)
    audit(Reset(1, ErrorCode.CANCEL, "the response was abandoned"), True)  # kubectl exited
    audit(opened(3, "GET", "https://kubernetes.default.svc/api/v1/namespaces/x/pods/p/exec"), True)
    audit(data(3, response(101, ("upgrade", "websocket"))), False)
    audit(Reset(3, ErrorCode.CANCEL, "the agent stopped"), False)  # cut from the far side
    first, second = recorded
    assert (first.status, first.error, first.bytes_in) == (101, None, 6)
    assert (second.status, second.error) == (101, "cut short: the agent stopped")


def test_odd_hosts_are_audited_as_egress_without_raising() -> None:
    """A host the agent refuses as no valid name (a malformed IDNA label, Unicode, a control
    character) is still one exchange to audit: classifying it must not end the splice."""
    recorded = Recorded()
    audit = SplicedAudit(recorded)  # type: ignore[arg-type]
    targets = [
        ("GET", "http://xn--api-.vendor.example/x?secret=1"),
        ("GET", "https://xn--api-.googleapis.com/v1"),
        ("GET", "https://xn--api-.default.svc/version"),
        ("CONNECT", "b\u00fccher.vendor.example:443"),
        ("CONNECT", "api.vendor.example\t:443"),
    ]
    for stream_id, (method, target) in enumerate(targets, start=1):
        audit(opened(stream_id, method, target), True)
        audit(End(stream_id), True)
        audit(data(stream_id, response(422, (ERROR_HEADER, "VALIDATION_ERROR"))), False)
        audit(End(stream_id), False)
    assert [(r.service, r.status, r.error) for r in recorded] == [
        ("http", 422, "VALIDATION_ERROR")
    ] * len(targets)
    assert recorded[0].operation == "GET http://xn--api-.vendor.example/x"


def test_a_google_call_is_recorded_with_the_method_it_overrides_to() -> None:
    """Google acts on ``X-HTTP-Method-Override``: the trail names that method too."""
    recorded = Recorded()
    audit = SplicedAudit(recorded)  # type: ignore[arg-type]
    target = "https://storage.googleapis.com/storage/v1/b/logs"
    audit(opened(1, "POST", target, ("x-http-method-override", "DELETE")), True)
    audit(opened(3, "GET", target), True)
    for stream_id in (1, 3):
        audit(End(stream_id), True)
        audit(data(stream_id, response(204)), False)
        audit(End(stream_id), False)
    assert [(r.service, r.operation) for r in recorded] == [
        ("gcp/storage", "POST as DELETE /storage/v1/b/logs"),
        ("gcp/storage", "GET /storage/v1/b/logs"),
    ]
