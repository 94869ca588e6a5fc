"""Property tests for the tunnel: fuzzed input, split invariance, and a two-sided model check."""

from __future__ import annotations

import itertools
import json
import random

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from alien.protocol.errors import StreamStateError, TunnelProtocolError
from alien.protocol.frames import (
    Data,
    End,
    ErrorCode,
    FrameType,
    GoAway,
    Hello,
    Open,
    Ping,
    Pong,
    Reset,
    Settings,
    WindowUpdate,
    decode_frames,
    encode_frame,
)
from alien.protocol.tunnel import Connection
from alien.protocol.tunnel_events import (
    DataReceived,
    StreamOpened,
    StreamReset,
)

from .tunnel_pair import Pair

SMALL = Settings(
    max_frame_size=16384, initial_window=65536, connection_window=131072, max_concurrent_streams=3
)
HELLO = encode_frame(Hello(Settings()))


def feed_all(conn: Connection, chunks: list[bytes]) -> list:
    events = []
    for chunk in chunks:
        events += conn.receive_data(chunk)
    return events


# --- fuzzing ----------------------------------------------------------------------------------

_likely_ids = st.sampled_from([1, 1, 3, 3, 5, 7, 2, 0])
stream_ids = st.one_of(_likely_ids, _likely_ids, _likely_ids, st.integers(0, 2**32 - 1))
json_meta = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=10),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner),
    max_leaves=8,
)
meta_bytes = st.one_of(
    st.binary(max_size=64),
    json_meta.map(lambda m: json.dumps(m).encode()),
    st.just(b"[" * 5000),
)
frames = st.one_of(
    st.builds(Open, stream_ids, meta_bytes),
    st.builds(Data, stream_ids, st.binary(max_size=40_000)),
    st.builds(End, stream_ids),
    st.builds(Reset, stream_ids, st.integers(0, 2**32 - 1), st.text(max_size=20)),
    st.builds(WindowUpdate, stream_ids, st.integers(1, 2**31 - 1)),
    st.builds(Ping, st.binary(min_size=8, max_size=8)),
    st.builds(Pong, st.binary(min_size=8, max_size=8)),
    st.builds(GoAway, st.integers(0, 2**31 - 1), st.integers(0, 2**32 - 1), st.text(max_size=9)),
    st.builds(Hello, st.just(Settings())),
)
raw_frames = st.builds(
    lambda t, f, sid, payload: (
        ((len(payload) << 8) | t).to_bytes(4, "big") + bytes([f]) + sid.to_bytes(4, "big") + payload
    ),
    st.integers(0, 12),
    st.sampled_from([0, 0, 0, 1, 0x80]),
    st.integers(0, 2**32 - 1),
    st.binary(max_size=40),
)


def _split(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({0, len(data), *(c % (len(data) + 1) for c in cuts)})
    return [data[a:b] for a, b in itertools.pairwise(points)]


def _assert_only_protocol_errors(conn: Connection, chunks: list[bytes]) -> None:
    try:
        events = feed_all(conn, chunks)
    except TunnelProtocolError as exc:
        event(f"refused: {ErrorCode(exc.error_code).name}")
        assert exc.error_code in set(ErrorCode)
        assert isinstance(decode_frames(conn.data_to_send())[-1], GoAway)
    else:
        event(f"accepted, {min(len(events), 3)}+ events")


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300), st.lists(st.integers(0, 400), max_size=5), st.booleans())
def test_arbitrary_bytes_raise_nothing_but_protocol_errors(
    data: bytes, cuts: list[int], after_hello: bool
) -> None:
    conn = Connection("server", settings=SMALL)
    _assert_only_protocol_errors(conn, _split((HELLO if after_hello else b"") + data, cuts))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(frames | raw_frames, max_size=12), st.sampled_from(["client", "server"]))
def test_arbitrary_frame_sequences_raise_nothing_but_protocol_errors(items, role) -> None:
    conn = Connection(role, settings=SMALL)
    data = HELLO + b"".join(i if isinstance(i, bytes) else encode_frame(i) for i in items)
    _assert_only_protocol_errors(conn, [data])


# --- split invariance -------------------------------------------------------------------------


def _client_traffic(ops: list[tuple[str, int, int]]) -> bytes:
    """Bytes a client produces for a random script of opens, sends, ends, resets and pings."""
    client = Connection("client")
    streams: list[int] = []
    for op, pick, size in ops:
        if op == "open" or not streams:
            streams.append(client.open_stream({"method": "GET", "n": len(streams)}))
            continue
        sid = streams[pick % len(streams)]
        try:
            if op == "send":
                client.send_data(sid, random.Random(size).randbytes(size))
            elif op == "end":
                client.end_stream(sid)
            elif op == "reset":
                client.reset_stream(sid, 0x100 + pick, "why not")
            else:
                client.ping()
        except StreamStateError:
            pass
    return client.data_to_send()


operations = st.lists(
    st.tuples(
        st.sampled_from(["open", "send", "send", "end", "reset", "ping"]),
        st.integers(0, 10),
        st.integers(0, 40_000),
    ),
    max_size=15,
)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(operations, st.lists(st.integers(0, 10**6), max_size=20))
def test_split_points_do_not_change_events(ops, cuts) -> None:
    data = _client_traffic(ops)
    whole = Connection("server")
    expected = whole.receive_data(data)
    split = Connection("server")
    assert feed_all(split, _split(data, cuts)) == expected
    assert split.data_to_send() == whole.data_to_send()


# --- two connections, checked against a model --------------------------------------------------


class TunnelPairMachine(RuleBasedStateMachine):
    """Random traffic both ways; what arrives is exactly what was accepted, memory stays bounded."""

    @initialize()
    def connect(self) -> None:
        self.pair = Pair.with_settings(SMALL)
        self.conns = {"client": self.pair.client, "server": self.pair.server}
        self.peer = {"client": "server", "server": "client"}
        self.sendable: dict[str, set[int]] = {"client": set(), "server": set()}
        self.known: dict[str, set[int]] = {"client": set(), "server": set()}
        self.sent: dict[tuple[str, int], bytearray] = {}
        self.got: dict[tuple[str, int], bytearray] = {}
        self.unacked: dict[tuple[str, int], int] = {}
        self.reset: set[int] = set()

    def _pick(self, streams: set[int], index: int) -> int | None:
        ordered = sorted(streams)
        return ordered[index % len(ordered)] if ordered else None

    @rule(side=st.sampled_from(["client", "server"]))
    def open(self, side: str) -> None:
        conn = self.conns[side]
        try:
            sid = conn.open_stream({"by": side})
        except StreamStateError:
            assert len([s for s in conn.open_streams if (s % 2 == 1) == (side == "client")]) >= 3
            return
        self.sendable[side].add(sid)
        self.known[side].add(sid)

    @rule(
        side=st.sampled_from(["client", "server"]),
        index=st.integers(0, 9),
        size=st.integers(0, 70_000),
    )
    def send(self, side: str, index: int, size: int) -> None:
        sid = self._pick(self.sendable[side], index)
        if sid is None:
            return
        data = random.Random(size).randbytes(size)
        accepted = self.conns[side].send_data(sid, data)
        assert 0 <= accepted <= size
        if accepted < size:
            event("send limited by credit")
        self.sent.setdefault((side, sid), bytearray()).extend(data[:accepted])

    @rule(side=st.sampled_from(["client", "server"]), index=st.integers(0, 9))
    def end(self, side: str, index: int) -> None:
        sid = self._pick(self.sendable[side], index)
        if sid is not None:
            self.conns[side].end_stream(sid)
            self.sendable[side].discard(sid)

    @rule(side=st.sampled_from(["client", "server"]), index=st.integers(0, 9))
    def reset_stream(self, side: str, index: int) -> None:
        sid = self._pick(self.known[side], index)
        if sid is not None:
            self.conns[side].reset_stream(sid, ErrorCode.CANCEL)
            self._forget(side, sid)

    @rule(side=st.sampled_from(["client", "server"]), index=st.integers(0, 9), part=st.floats(0, 1))
    def acknowledge(self, side: str, index: int, part: float) -> None:
        pending = {sid for (s, sid), n in self.unacked.items() if s == side and n}
        sid = self._pick(pending, index)
        if sid is None:
            return
        n = int(self.unacked[(side, sid)] * part)
        self.conns[side].acknowledge(sid, n)
        self.unacked[(side, sid)] -= n

    @rule(side=st.sampled_from(["client", "server"]))
    def ping(self, side: str) -> None:
        self.conns[side].ping()

    @rule()
    def pump(self) -> None:
        self.pair.pump()
        client_events, server_events = self.pair.take()
        for side, events in (("client", client_events), ("server", server_events)):
            for ev in events:
                if isinstance(ev, StreamOpened):
                    self.sendable[side].add(ev.stream_id)
                    self.known[side].add(ev.stream_id)
                elif isinstance(ev, DataReceived):
                    self.got.setdefault((side, ev.stream_id), bytearray()).extend(ev.data)
                    key = (side, ev.stream_id)
                    self.unacked[key] = self.unacked.get(key, 0) + len(ev.data)
                elif isinstance(ev, StreamReset):
                    event("stream reset by the peer")
                    self._forget(side, ev.stream_id)
        for (side, sid), data in self.sent.items():
            if sid not in self.reset:  # everything accepted has arrived, in order
                assert self.got.get((self.peer[side], sid), b"") == data

    def _forget(self, side: str, sid: int) -> None:
        self.reset.add(sid)
        self.sendable[side].discard(sid)
        self.known[side].discard(sid)
        self.unacked.pop((side, sid), None)

    @invariant()
    def delivered_bytes_are_a_prefix_of_accepted_bytes(self) -> None:
        for (side, sid), data in self.got.items():
            assert bytes(data) == bytes(self.sent.get((self.peer[side], sid), b""))[: len(data)]

    @invariant()
    def buffered_bytes_stay_within_the_windows(self) -> None:
        for side, conn in self.conns.items():
            total = 0
            for (s, sid), n in self.unacked.items():
                if s == side:
                    assert conn.unacknowledged(sid) == n
                    assert n <= SMALL.initial_window
                    total += n
            assert total <= SMALL.connection_window
            assert not conn.failed


TestTunnelPairMachine = TunnelPairMachine.TestCase
TestTunnelPairMachine.settings = settings(
    max_examples=60,
    stateful_step_count=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)


def test_frame_types_cover_the_documented_table() -> None:
    assert [t.name for t in FrameType] == [
        "HELLO",
        "OPEN",
        "DATA",
        "END",
        "RESET",
        "WINDOW_UPDATE",
        "PING",
        "PONG",
        "GOAWAY",
    ]
