"""A tunnel's messages carried by plain HTTP requests: the agent's leg of a debug session when
the agent reaches the manager by HTTPS long-polling only (a proxy on the way refuses
WebSockets). Pure: the batch body format, the numbering that makes retries safe, and the names
both ends must spell alike (the manager's ``debug_http_leg``, the agent's ``tunnel.http_leg``).

The leg is two one-way pipes, each a sequence of messages numbered from 0:

* **up** (agent → manager): ``POST …/up?seq=N`` carries messages ``N, N+1, …``; the answer
  says how many the manager holds in all. A request lost on the way is sent again with the same
  ``seq``, and the messages the manager already has are skipped (:class:`Inbox`), so none is
  applied twice or lost;
* **down** (manager → agent): ``GET …/down?ack=M`` says the agent holds messages ``0 … M-1``;
  the manager forgets those (:class:`Outbox`) and answers the next ones, as soon as there are
  any. An answer lost on the way is asked for again with the same ``ack``.

Why numbering rather than trusting each request: a long-poll over a proxy can fail after the
peer acted on it (the answer is lost, not the request), and the tunnel's byte stream tolerates
neither a gap nor a repeat. What is kept for a resend is bounded by the sender's limit: a
sender waits while more than that is unacknowledged.

A batch body is its messages one after the other, each a 4-byte big-endian length and the
message. Untrusted input: a body that is cut short, holds an empty or oversized message, or too
many, raises :class:`LegBatchError`.
"""

from __future__ import annotations

import struct
from collections import deque
from collections.abc import Iterable

from alien.errors import ValidationError

_LENGTH = struct.Struct(">I")
MAX_MESSAGE = 4 * 1024 * 1024
"""The largest message in a batch (the tunnel's own message cap, see ``MAX_RECEIVED_MESSAGE``)."""
MAX_BATCH_BYTES = 3 * 1024 * 1024
"""The most message bytes a sender packs into one request or answer (but a single larger
message goes alone): an ``up`` body stays under the manager's body limit (4 MiB)."""
MAX_BATCH_MESSAGES = 4096
BATCH_TYPE = "application/octet-stream"
"""The media type of a batch body (an ``up`` request's, a ``down`` answer's)."""
FIRST_HEADER = "alien-leg-first"
"""On a ``down`` answer: the number of its first message."""
LEG_ID_HEADER = "alien-leg"
"""On every request after the opening: the leg's id (a header, never in a URL a proxy logs)."""
MAX_DOWN_WAIT = 20.0
"""The longest a ``down`` is held open waiting for messages (the agent asks for that long)."""


class LegBatchError(ValidationError):
    """A batch body that is not what the other side may send."""

    def __init__(self, message: str) -> None:
        super().__init__(message, field="body", code="INVALID_TUNNEL_BATCH")


def encode_batch(messages: Iterable[bytes | memoryview]) -> bytes:
    """The body carrying ``messages``."""
    parts: list[bytes | memoryview] = []
    for message in messages:
        parts += (_LENGTH.pack(len(message)), message)
    return b"".join(parts)


def decode_batch(body: bytes | memoryview) -> list[bytes]:
    """The messages of a batch body (see the module docstring for what is refused)."""
    view = memoryview(body)
    if len(view) > MAX_MESSAGE + MAX_BATCH_BYTES + MAX_BATCH_MESSAGES * _LENGTH.size:
        raise LegBatchError("the batch is larger than any sender packs")
    messages: list[bytes] = []
    at = 0
    while at < len(view):
        if len(messages) == MAX_BATCH_MESSAGES:
            raise LegBatchError(f"a batch holds at most {MAX_BATCH_MESSAGES} messages")
        if len(view) - at < _LENGTH.size:
            raise LegBatchError("the batch ends inside a message's length")
        (size,) = _LENGTH.unpack_from(view, at)
        at += _LENGTH.size
        if not 0 < size <= MAX_MESSAGE:
            raise LegBatchError(f"a message is 1 to {MAX_MESSAGE} bytes, not {size}")
        if len(view) - at < size:
            raise LegBatchError("the batch ends inside a message")
        messages.append(bytes(view[at : at + size]))
        at += size
    return messages


class Outbox:
    """Messages sent on one pipe and not yet acknowledged by the receiver, numbered from 0."""

    def __init__(self) -> None:
        self._first = 0  # the number of the oldest message kept
        self._kept: deque[bytes] = deque()
        self.unacknowledged_bytes = 0

    @property
    def sent(self) -> int:
        """How many messages were put in, in all (the next one's number)."""
        return self._first + len(self._kept)

    def put(self, message: bytes) -> None:
        self._kept.append(message)
        self.unacknowledged_bytes += len(message)

    def acknowledge(self, received: int) -> None:
        """The receiver holds every message before number ``received``: forget them. A number
        below what was already acknowledged changes nothing (an old request arriving late);
        one beyond what was sent is refused."""
        if received > self.sent:
            raise ValidationError(
                f"acknowledges {received} messages, but only {self.sent} were sent", field="ack"
            )
        while self._first < received:
            self.unacknowledged_bytes -= len(self._kept.popleft())
            self._first += 1

    def batch(self, limit: int = MAX_BATCH_BYTES) -> tuple[int, list[bytes]]:
        """The unacknowledged messages from the oldest on, at most ``limit`` bytes of them (at
        least one, whatever its size), and the number of the first."""
        taken: list[bytes] = []
        size = 0
        for message in self._kept:
            if taken and size + len(message) > limit:
                break
            taken.append(message)
            size += len(message)
            if len(taken) == MAX_BATCH_MESSAGES:
                break
        return self._first, taken


class Inbox:
    """The receiving end of a pipe: which numbered messages are new."""

    def __init__(self) -> None:
        self.received = 0

    def accept(self, first: int, messages: list[bytes]) -> list[bytes]:
        """The messages of a batch starting at number ``first`` that were not received yet
        (a resent batch overlaps what came before). A batch starting past the next expected
        number would leave a gap: refused."""
        if first > self.received:
            raise ValidationError(
                f"the batch starts at message {first}, but {self.received} is the next expected",
                field="seq",
                code="TUNNEL_BATCH_GAP",
            )
        fresh = messages[self.received - first :]
        self.received += len(fresh)
        return fresh
