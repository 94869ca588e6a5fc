"""The tunnel connection: handshake, streams, flow control, shutdown, and refusing bad peers."""

from __future__ import annotations

import pytest

from alien.errors import ValidationError
from alien.protocol.errors import StreamStateError, TunnelProtocolError
from alien.protocol.frames import (
    FLOOR_SETTINGS,
    MAX_WINDOW,
    Data,
    End,
    ErrorCode,
    Frame,
    GoAway,
    Hello,
    Open,
    Ping,
    Reset,
    Settings,
    WindowUpdate,
    decode_frames,
    encode_frame,
)
from alien.protocol.tunnel import Connection
from alien.protocol.tunnel_events import (
    ConnectionTerminated,
    DataReceived,
    PingReceived,
    PongReceived,
    SettingsReceived,
    StreamEnded,
    StreamOpened,
    StreamReset,
    WindowUpdated,
)

from .tunnel_pair import Pair, handshaken

SMALL = Settings(
    max_frame_size=16384, initial_window=65536, connection_window=131072, max_concurrent_streams=4
)


def frames(*items: Frame) -> bytes:
    return b"".join(encode_frame(f) for f in items)


def server_after_hello(settings: Settings | None = None) -> Connection:
    """A server that has the (hand-made) client's HELLO, ready for crafted frames."""
    server = Connection("server", settings=settings)
    server.receive_data(frames(Hello(Settings())))
    server.data_to_send()
    return server


def received(events, kind=DataReceived) -> bytes:
    return b"".join(e.data for e in events if isinstance(e, kind))


def expect_protocol_error(conn: Connection, data: bytes, code: ErrorCode, match: str) -> None:
    with pytest.raises(TunnelProtocolError, match=match) as info:
        conn.receive_data(data)
    assert info.value.error_code == code
    sent = decode_frames(conn.data_to_send())
    assert isinstance(sent[-1], GoAway) and sent[-1].code == code


class TestHandshake:
    def test_each_side_starts_with_its_hello(self) -> None:
        conn = Connection("server", settings=SMALL)
        assert decode_frames(conn.data_to_send()) == [Hello(SMALL)]
        assert not conn.handshake_done

    def test_settings_are_exchanged_and_windows_grow(self) -> None:
        pair = Pair()
        pair.pump()
        client_events, _ = pair.take()
        assert client_events == [SettingsReceived(Settings()), WindowUpdated(0)]
        assert pair.client.remote_settings == Settings()
        stream = pair.client.open_stream({})
        assert pair.client.send_credit(stream) == Settings().initial_window

    def test_before_the_peer_hello_the_floors_apply(self) -> None:
        client = Connection("client")
        client.data_to_send()
        stream = client.open_stream({"method": "GET"})
        assert client.send_credit(stream) == FLOOR_SETTINGS.initial_window
        assert client.send_data(stream, b"x" * 100_000) == FLOOR_SETTINGS.initial_window
        sizes = [len(f.data) for f in decode_frames(client.data_to_send()) if isinstance(f, Data)]
        assert max(sizes) == FLOOR_SETTINGS.max_frame_size

    def test_the_hello_credits_streams_opened_before_it(self) -> None:
        pair = Pair()
        stream = pair.client.open_stream({})
        pair.client.send_data(stream, b"x" * 70_000)
        pair.pump()
        assert pair.client.send_credit(stream) == Settings().initial_window - 65536

    def test_anything_before_hello_is_a_protocol_error(self) -> None:
        conn = Connection("server")
        expect_protocol_error(conn, frames(Ping(b"12345678")), ErrorCode.PROTOCOL_ERROR, "HELLO")

    def test_a_second_hello_is_a_protocol_error(self) -> None:
        conn = server_after_hello()
        expect_protocol_error(conn, frames(Hello(Settings())), ErrorCode.PROTOCOL_ERROR, "second")

    def test_role_is_validated(self) -> None:
        with pytest.raises(ValidationError):
            Connection("peer")  # type: ignore[arg-type]


class TestStreams:
    def test_client_odd_server_even_both_can_open(self) -> None:
        pair = handshaken()
        assert [pair.client.open_stream({"n": i}) for i in range(3)] == [1, 3, 5]
        assert [pair.server.open_stream({"n": i}) for i in range(2)] == [2, 4]
        pair.pump()
        client_events, server_events = pair.take()
        assert [e for e in server_events if isinstance(e, StreamOpened)] == [
            StreamOpened(1, {"n": 0}),
            StreamOpened(3, {"n": 1}),
            StreamOpened(5, {"n": 2}),
        ]
        assert [e.stream_id for e in client_events if isinstance(e, StreamOpened)] == [2, 4]

    def test_request_response_with_half_close(self) -> None:
        pair = handshaken()
        meta = {"method": "POST", "target": "https://s3.amazonaws.com/", "headers": [["a", "b"]]}
        sid = pair.client.open_stream(meta)
        pair.client.send_data(sid, b"request body")
        pair.client.end_stream(sid)
        pair.pump()
        _, server_events = pair.take()
        assert server_events == [
            StreamOpened(sid, meta),
            DataReceived(sid, b"request body"),
            StreamEnded(sid),
        ]
        pair.server.acknowledge(sid, 12)
        pair.server.send_data(sid, b"response")
        pair.server.end_stream(sid)
        pair.pump()
        client_events, _ = pair.take()
        assert client_events == [DataReceived(sid, b"response"), StreamEnded(sid)]
        assert pair.server.open_streams == []
        assert pair.client.open_streams == []
        assert pair.client.unacknowledged(sid) == 8
        pair.client.acknowledge(sid, 8)
        assert pair.client.unacknowledged(sid) == 0

    def test_sending_after_end_or_on_unknown_streams_is_refused_locally(self) -> None:
        pair = handshaken()
        sid = pair.client.open_stream({})
        pair.client.end_stream(sid)
        with pytest.raises(StreamStateError, match="ended"):
            pair.client.send_data(sid, b"x")
        with pytest.raises(StreamStateError, match="never opened"):
            pair.client.send_data(99, b"x")
        with pytest.raises(StreamStateError, match="never opened"):
            pair.client.acknowledge(0, 1)

    def test_reset_reaches_the_peer_and_closes_the_stream(self) -> None:
        pair = handshaken()
        sid = pair.client.open_stream({})
        pair.pump()
        pair.server.reset_stream(sid, 0x101, "upstream refused the connection")
        pair.pump()
        client_events, _ = pair.take()
        assert StreamReset(sid, 0x101, "upstream refused the connection") in client_events
        with pytest.raises(StreamStateError, match="closed"):
            pair.client.send_data(sid, b"x")
        pair.client.reset_stream(sid)  # a benign race: no-op
        pair.client.acknowledge(sid, 0)

    def test_data_in_flight_after_our_reset_is_dropped_and_its_credit_returned(self) -> None:
        pair = handshaken(SMALL)
        sid = pair.client.open_stream({})
        pair.pump()
        assert pair.server.send_data(sid, b"x" * 65536) == 65536
        pair.client.reset_stream(sid)  # before the client has read the data
        pair.pump()
        client_events, server_events = pair.take()
        assert not [e for e in client_events if isinstance(e, DataReceived)]
        assert StreamReset(sid, ErrorCode.CANCEL, "") in server_events
        other = pair.server.open_stream({})
        assert pair.server.send_credit(other) == 65536  # the connection window came back

    def test_reset_releases_unconsumed_data_for_the_connection(self) -> None:
        pair = handshaken(SMALL)
        sid = pair.client.open_stream({})
        pair.pump()
        pair.server.send_data(sid, b"x" * 65536)
        pair.pump()
        pair.client.reset_stream(sid)  # the app gives up without consuming
        pair.pump()
        other = pair.server.open_stream({})
        assert pair.server.send_credit(other) == 65536

    def test_bad_metadata_resets_only_that_stream(self) -> None:
        server = server_after_hello()
        events = server.receive_data(frames(Open(1, b"{nope"), Open(3, b'{"ok":true}')))
        assert events == [StreamOpened(3, {"ok": True})]
        sent = decode_frames(server.data_to_send())
        assert sent == [Reset(1, ErrorCode.INVALID_METADATA, sent[0].reason)]
        assert "JSON" in sent[0].reason
        assert server.receive_data(frames(Data(1, b"late"))) == []  # ignored, not an error

    def test_metadata_must_be_a_json_object_that_fits_a_frame(self) -> None:
        conn = handshaken().client
        with pytest.raises(ValidationError, match="JSON object"):
            conn.open_stream(["not", "a", "dict"])  # type: ignore[arg-type]
        with pytest.raises(ValidationError, match="JSON object"):
            conn.open_stream({"x": float("nan")})
        with pytest.raises(ValidationError, match="frame size"):
            conn.open_stream({"h": "x" * Settings().max_frame_size})

    def test_concurrency_limit_on_both_ends(self) -> None:
        pair = handshaken(Settings(max_concurrent_streams=2))
        first, _second = pair.client.open_stream({}), pair.client.open_stream({})
        with pytest.raises(StreamStateError, match="concurrent"):
            pair.client.open_stream({})
        pair.client.reset_stream(first)
        assert pair.client.open_stream({}) == 5

    def test_opens_beyond_the_limit_are_refused_not_fatal(self) -> None:
        server = server_after_hello(Settings(max_concurrent_streams=1))
        events = server.receive_data(frames(Open(1, b"{}"), Open(3, b"{}")))
        assert events == [StreamOpened(1, {})]
        assert decode_frames(server.data_to_send()) == [
            Reset(3, ErrorCode.REFUSED_STREAM, "too many concurrent streams")
        ]

    def test_stream_ids_exhausted(self) -> None:
        conn = handshaken().client
        conn._next_local_id = 2**31 + 1  # as after 2^30 streams
        with pytest.raises(StreamStateError, match="exhausted"):
            conn.open_stream({})


class TestPeerViolations:
    @pytest.mark.parametrize(
        ("sequence", "code", "match"),
        [
            ([Open(2, b"{}")], ErrorCode.PROTOCOL_ERROR, "only we may open"),
            ([Open(3, b"{}"), Open(1, b"{}")], ErrorCode.PROTOCOL_ERROR, "reuses"),
            ([Open(1, b"{}"), Open(1, b"{}")], ErrorCode.PROTOCOL_ERROR, "reuses"),
            ([Data(1, b"x")], ErrorCode.PROTOCOL_ERROR, "never opened"),
            ([End(5)], ErrorCode.PROTOCOL_ERROR, "never opened"),
            ([WindowUpdate(2, 1)], ErrorCode.PROTOCOL_ERROR, "never opened"),
            ([Reset(7, 0)], ErrorCode.PROTOCOL_ERROR, "never opened"),
            ([Open(1, b"{}"), End(1), Data(1, b"x")], ErrorCode.STREAM_CLOSED, "after its END"),
            ([Open(1, b"{}"), End(1), End(1)], ErrorCode.STREAM_CLOSED, "after its END"),
            ([WindowUpdate(0, MAX_WINDOW)], ErrorCode.FLOW_CONTROL_ERROR, "2\\^31-1"),
        ],
    )
    def test_connection_errors(self, sequence, code, match) -> None:
        expect_protocol_error(server_after_hello(), frames(*sequence), code, match)

    def test_data_beyond_the_stream_window(self) -> None:
        server = server_after_hello(SMALL)
        server.receive_data(frames(Open(1, b"{}"), Data(1, b"x" * 16384)))
        many = frames(*[Data(1, b"x" * 16384)] * 3)
        server.receive_data(many)  # exactly the 64 KiB window
        expect_protocol_error(
            server, frames(Data(1, b"x")), ErrorCode.FLOW_CONTROL_ERROR, "window of stream 1"
        )

    def test_data_beyond_the_connection_window(self) -> None:
        server = server_after_hello(SMALL)
        chunk = b"x" * 16384
        burst = [Open(1, b"{}"), *[Data(1, chunk)] * 4, Open(3, b"{}"), *[Data(3, chunk)] * 4]
        server.receive_data(frames(*burst))  # 128 KiB: the whole connection window
        expect_protocol_error(
            server,
            frames(Open(5, b"{}"), Data(5, b"x")),
            ErrorCode.FLOW_CONTROL_ERROR,
            "connection",
        )

    def test_stream_window_overflow(self) -> None:
        server = server_after_hello()
        server.receive_data(frames(Open(1, b"{}")))
        expect_protocol_error(
            server, frames(WindowUpdate(1, MAX_WINDOW)), ErrorCode.FLOW_CONTROL_ERROR, "2\\^31-1"
        )

    def test_a_failed_connection_stays_failed(self) -> None:
        server = server_after_hello()
        with pytest.raises(TunnelProtocolError):
            server.receive_data(frames(Data(1, b"x")))
        with pytest.raises(TunnelProtocolError, match="already failed"):
            server.receive_data(frames(Ping(b"12345678")))
        assert server.failed
        with pytest.raises(StreamStateError, match="failed"):
            server.open_stream({})

    def test_frames_for_streams_that_are_gone_are_ignored(self) -> None:
        server = server_after_hello()
        server.receive_data(frames(Open(1, b"{}"), End(1)))
        server.end_stream(1)  # closed both ways, nothing unconsumed: forgotten
        assert server.receive_data(frames(WindowUpdate(1, 10), Reset(1, 0))) == []


class TestFlowControl:
    def test_send_is_bounded_by_credit_and_resumes_on_window_update(self) -> None:
        pair = handshaken(SMALL)
        sid = pair.client.open_stream({})
        payload = bytes(range(256)) * 1024  # 256 KiB
        sent = pair.client.send_data(sid, payload)
        assert sent == 65536
        assert pair.client.send_data(sid, payload[sent:]) == 0
        pair.pump()
        _, server_events = pair.take()
        assert received(server_events) == payload[:sent]
        pair.server.acknowledge(sid, 10_000)  # below a quarter window: no update yet
        pair.pump()
        assert pair.take()[0] == []
        pair.server.acknowledge(sid, sent - 10_000)
        pair.pump()
        client_events, _ = pair.take()
        assert WindowUpdated(sid) in client_events
        assert pair.client.send_credit(sid) == 65536

    def test_full_transfer_with_a_consuming_reader(self) -> None:
        pair = handshaken(SMALL)
        sid = pair.client.open_stream({})
        payload = bytes(i % 251 for i in range(1_000_000))
        offset, got = 0, bytearray()
        while offset < len(payload) or not got:
            offset += pair.client.send_data(sid, payload[offset:])
            if offset == len(payload):
                pair.client.end_stream(sid)
            pair.pump()
            _, server_events = pair.take()
            for event in server_events:
                if isinstance(event, DataReceived):
                    got += event.data
                    pair.server.acknowledge(sid, len(event.data))
            if offset == len(payload):
                pair.pump()
                break
        assert bytes(got) == payload

    def test_a_slow_consumer_bounds_what_it_buffers(self) -> None:
        pair = handshaken(SMALL)
        streams = [pair.client.open_stream({}) for _ in range(4)]
        for _ in range(3):
            for sid in streams:
                pair.client.send_data(sid, b"x" * 100_000)
            pair.pump()
        _, server_events = pair.take()
        buffered = sum(len(e.data) for e in server_events if isinstance(e, DataReceived))
        assert buffered == SMALL.connection_window  # never more than announced
        assert all(pair.server.unacknowledged(s) <= SMALL.initial_window for s in streams)

    def test_acknowledging_more_than_received_is_refused(self) -> None:
        pair = handshaken()
        sid = pair.client.open_stream({})
        pair.client.send_data(sid, b"abc")
        pair.pump()
        with pytest.raises(StreamStateError, match="only 3"):
            pair.server.acknowledge(sid, 4)
        with pytest.raises(ValidationError):
            pair.server.acknowledge(sid, -1)

    def test_empty_send_takes_nothing(self) -> None:
        pair = handshaken()
        sid = pair.client.open_stream({})
        assert pair.client.send_data(sid, b"") == 0


class TestPingAndShutdown:
    def test_ping_pong(self) -> None:
        pair = handshaken()
        payload = pair.client.ping()
        pair.pump()
        client_events, server_events = pair.take()
        assert server_events == [PingReceived(payload)]
        assert client_events == [PongReceived(payload)]
        assert pair.client.ping(b"abcdefgh") == b"abcdefgh"
        with pytest.raises(ValidationError):
            pair.client.ping(b"short")

    def test_goaway_stops_new_streams_and_refuses_unprocessed_ones(self) -> None:
        pair = handshaken()
        early = pair.client.open_stream({})
        pair.pump()
        pair.take()
        pair.server.close(ErrorCode.NO_ERROR, "manager restarting")
        late = pair.client.open_stream({})  # crosses the GOAWAY on the wire
        pair.pump()
        client_events, server_events = pair.take()
        assert ConnectionTerminated(0, "manager restarting", early) in client_events
        assert StreamReset(late, ErrorCode.REFUSED_STREAM, "the peer is going away") in (
            client_events
        )
        assert not [e for e in server_events if isinstance(e, StreamOpened)]
        with pytest.raises(StreamStateError, match="going away"):
            pair.client.open_stream({})
        with pytest.raises(StreamStateError, match="going away"):
            pair.server.open_stream({})
        pair.client.send_data(early, b"still fine")  # streams below the line finish normally
        pair.pump()
        assert received(pair.take()[1]) == b"still fine"

    def test_reset_and_close_codes_must_fit_32_bits(self) -> None:
        pair = handshaken()
        sid = pair.client.open_stream({})
        with pytest.raises(ValidationError):
            pair.client.reset_stream(sid, 2**32)
        with pytest.raises(ValidationError):
            pair.client.close(-1)
