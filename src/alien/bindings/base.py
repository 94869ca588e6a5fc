"""The resource interfaces app code sees, identical on every platform.

Each interface is a template: the public methods validate arguments and normalise input once
(here), then call a small set of abstract ``_methods`` a backend implements. A backend
therefore cannot accept a key, TTL or message the others refuse, and the contract tests in
``tests/contract`` hold every backend to the same observable behaviour.

Decisions that app code can rely on everywhere:

* ``Storage.put`` replaces an object atomically: readers see the old or the new bytes, never a
  mix. ``etag`` changes whenever the content changes and is otherwise opaque.
* ``Kv`` entries past their TTL are invisible to every read at once, whenever the backend
  actually reclaims them.
* ``Queue`` is at-least-once: a received message that is not acked within its visibility
  timeout is delivered again with ``attempts`` one higher and a **new receipt**. ``ack`` and
  ``change_visibility`` with a receipt that is no longer current (the message was received
  again, or already acked) do nothing and return ``False`` rather than raising: a handler that
  overran its timeout is an expected race, not a programming error, and must not delete a
  message that another consumer now holds.
"""

from __future__ import annotations

import itertools
from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from functools import cached_property
from typing import BinaryIO, ClassVar, Literal, Self

from alien.bindings import validate
from alien.bindings.aio import AsyncView, async_iterator, async_view
from alien.bindings.keys import validate_key
from alien.bindings.payload import Data, default_content_type, iter_chunks
from alien.errors import NotFound, ValidationError
from alien.redaction import add_secret

ResourceKind = Literal["storage", "vault", "kv", "queue"]
RESOURCE_KINDS: tuple[ResourceKind, ...] = ("storage", "vault", "kv", "queue")

MAX_VISIBILITY_TIMEOUT = 12 * 3600.0
MAX_DELAY = 15 * 60.0
MAX_WAIT = 20.0
MAX_RECEIVE = 10


class Resource(ABC):
    """What every backend object shares: a kind, ``.aio`` and ``close()``."""

    kind: ClassVar[ResourceKind]

    @cached_property
    def aio(self) -> AsyncView[Self]:
        """The same API, async: ``await kv.aio.get("k")``, ``async for x in kv.aio.scan()``."""
        return AsyncView(self)

    def close(self) -> None:  # noqa: B027 - optional hook, most backends hold nothing
        """Release connections/handles. Idempotent; the object must not be used afterwards."""

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


# --- storage ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ObjectInfo:
    """What is known about a stored object without reading it."""

    key: str
    size: int
    modified: datetime
    etag: str
    content_type: str | None = None


def _missing_object(key: str) -> NotFound:
    return NotFound(f"object {key!r} not found", field="key")


class Storage(Resource):
    """Objects (blobs) addressed by ``/``-separated keys; see :mod:`alien.bindings.keys`."""

    kind = "storage"

    def put(self, key: str, data: Data, content_type: str | None = None) -> ObjectInfo:
        """Store ``data`` under ``key`` atomically, streaming it in bounded chunks."""
        validate_key(key)
        ctype = (
            default_content_type(key, data)
            if content_type is None
            else validate.content_type(content_type)
        )
        return self._put(key, iter_chunks(data), ctype)

    def get(self, key: str) -> bytes:
        """The whole object in memory; use :meth:`open` or :meth:`iter` for large ones."""
        with self.open(key) as stream:
            return stream.read()

    @async_view
    def open(self, key: str) -> BinaryIO:
        """A binary file-like reader over one consistent version of the object."""
        return self._open(validate_key(key))

    @async_iterator
    def iter(self, key: str, chunk_size: int = 1 << 20) -> Iterator[bytes]:
        """The object as chunks of at most ``chunk_size`` bytes (raises NotFound at once)."""
        size = validate.count(chunk_size, "chunk_size", low=1)
        return _read_chunks(self.open(key), size)

    def head(self, key: str) -> ObjectInfo:
        """Metadata of ``key``; raises NotFound if there is no such object."""
        info = self._head(validate_key(key))
        if info is None:
            raise _missing_object(key)
        return info

    def exists(self, key: str) -> bool:
        return self._head(validate_key(key)) is not None

    def delete(self, key: str) -> bool:
        """Remove ``key``; ``True`` if it existed."""
        return self._delete(validate_key(key))

    @async_iterator
    def list(self, prefix: str = "", limit: int | None = None) -> Iterator[ObjectInfo]:
        """Objects whose key starts with ``prefix``, in key (code point) order."""
        objects = self._list(validate.prefix(prefix))
        return itertools.islice(objects, validate.limit(limit))

    @abstractmethod
    def _put(self, key: str, chunks: Iterator[bytes], content_type: str) -> ObjectInfo: ...

    @abstractmethod
    def _open(self, key: str) -> BinaryIO:
        """Open ``key`` for reading or raise NotFound."""

    @abstractmethod
    def _head(self, key: str) -> ObjectInfo | None: ...

    @abstractmethod
    def _delete(self, key: str) -> bool: ...

    @abstractmethod
    def _list(self, prefix: str) -> Iterator[ObjectInfo]: ...

    missing = staticmethod(_missing_object)
    """Backends raise ``self.missing(key)`` so the NotFound message is the same everywhere."""


def _read_chunks(stream: BinaryIO, chunk_size: int) -> Iterator[bytes]:
    with stream:
        while chunk := stream.read(chunk_size):
            yield chunk


# --- vault -----------------------------------------------------------------------------------


class Vault(Resource):
    """Named secrets (text). Values never appear in messages, logs or reprs."""

    kind = "vault"

    def get_secret(self, name: str) -> str:
        """The value, registered with the process redactor first: whatever this process logs
        or reports from now on (an exception quoting it, a command failure) shows it masked."""
        value = self._get_secret(validate.secret_name(name))
        if value is None:
            raise NotFound(f"secret {name!r} not found", field="name")
        add_secret(value)
        return value

    def set_secret(self, name: str, value: str) -> None:
        name, value = validate.secret_name(name), validate.secret_value(value)
        add_secret(value)
        self._set_secret(name, value)

    def delete_secret(self, name: str) -> bool:
        """Remove ``name``; ``True`` if it existed."""
        return self._delete_secret(validate.secret_name(name))

    def list_secrets(self) -> list[str]:
        """Secret names, sorted."""
        return sorted(self._list_secrets())

    @abstractmethod
    def _get_secret(self, name: str) -> str | None: ...

    @abstractmethod
    def _set_secret(self, name: str, value: str) -> None: ...

    @abstractmethod
    def _delete_secret(self, name: str) -> bool: ...

    @abstractmethod
    def _list_secrets(self) -> list[str]: ...


# --- kv --------------------------------------------------------------------------------------


def _ttl(ttl: float | None) -> float | None:
    return None if ttl is None else validate.number(ttl, "ttl", low=1e-3, high=10 * 365 * 86400)


class Kv(Resource):
    """Small values by key with optional expiry. Keys follow :mod:`alien.bindings.keys`."""

    kind = "kv"

    def get(self, key: str) -> bytes | None:
        """The value, or ``None`` if absent or expired."""
        return self._get(validate_key(key))

    def set(self, key: str, value: bytes | str, ttl: float | None = None) -> None:
        """Store ``value`` (text as UTF-8); with ``ttl`` it vanishes after that many seconds."""
        self._set(validate_key(key), validate.payload(value, "value"), _ttl(ttl))

    def set_if_absent(self, key: str, value: bytes | str, ttl: float | None = None) -> bool:
        """Store only if ``key`` has no live value; ``True`` if this call stored it.

        Atomic across processes: of many concurrent callers exactly one gets ``True``
        (the building block for idempotency keys and simple locks).
        """
        return self._set_if_absent(validate_key(key), validate.payload(value, "value"), _ttl(ttl))

    def delete(self, key: str) -> bool:
        """Remove ``key``; ``True`` if it had a live value."""
        return self._delete(validate_key(key))

    @async_iterator
    def scan(self, prefix: str = "", limit: int | None = None) -> Iterator[tuple[str, bytes]]:
        """Live ``(key, value)`` pairs whose key starts with ``prefix``, in key order."""
        entries = self._scan(validate.prefix(prefix))
        return itertools.islice(entries, validate.limit(limit))

    @abstractmethod
    def _get(self, key: str) -> bytes | None: ...

    @abstractmethod
    def _set(self, key: str, value: bytes, ttl: float | None) -> None: ...

    @abstractmethod
    def _set_if_absent(self, key: str, value: bytes, ttl: float | None) -> bool: ...

    @abstractmethod
    def _delete(self, key: str) -> bool: ...

    @abstractmethod
    def _scan(self, prefix: str) -> Iterator[tuple[str, bytes]]: ...


# --- queue -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Message:
    """One delivery of a queued message. ``receipt`` identifies this delivery, not the message."""

    id: str
    body: bytes
    receipt: str
    attempts: int
    sent_at: datetime

    @property
    def text(self) -> str:
        """The body decoded as UTF-8."""
        return self.body.decode("utf-8")


def _receipt(message_or_receipt: Message | str) -> str:
    if isinstance(message_or_receipt, Message):
        return message_or_receipt.receipt
    if isinstance(message_or_receipt, str) and message_or_receipt:
        return message_or_receipt
    raise ValidationError("expected a Message or a non-empty receipt string", field="receipt")


class Queue(Resource):
    """At-least-once message queue with visibility timeouts (see the module docstring)."""

    kind = "queue"

    def send(self, body: bytes | str, delay: float = 0) -> str:
        """Enqueue ``body`` (text as UTF-8), visible after ``delay`` seconds; returns its id."""
        data = validate.payload(body, "body")
        return self._send(data, validate.number(delay, "delay", low=0, high=MAX_DELAY))

    def receive(
        self,
        max_messages: int = 1,
        visibility_timeout: float | None = None,
        wait: float = 0,
    ) -> list[Message]:
        """Up to ``max_messages`` visible messages, hidden from others for the timeout.

        With ``wait`` > 0, blocks up to that many seconds until at least one message is
        available (long poll); returns an empty list if none came.
        """
        n = validate.count(max_messages, "max_messages", low=1, high=MAX_RECEIVE)
        timeout = (
            None
            if visibility_timeout is None
            else validate.number(
                visibility_timeout, "visibility_timeout", low=0, high=MAX_VISIBILITY_TIMEOUT
            )
        )
        return self._receive(n, timeout, validate.number(wait, "wait", low=0, high=MAX_WAIT))

    def ack(self, message_or_receipt: Message | str) -> bool:
        """Delete the delivered message; ``False`` if the receipt is no longer current."""
        return self._ack(_receipt(message_or_receipt))

    def change_visibility(self, message_or_receipt: Message | str, timeout: float) -> bool:
        """Hide the message for ``timeout`` more seconds from now (0 = release it at once).

        ``False`` if the receipt is no longer current.
        """
        seconds = validate.number(timeout, "timeout", low=0, high=MAX_VISIBILITY_TIMEOUT)
        return self._change_visibility(_receipt(message_or_receipt), seconds)

    @abstractmethod
    def _send(self, body: bytes, delay: float) -> str: ...

    @abstractmethod
    def _receive(
        self, max_messages: int, visibility_timeout: float | None, wait: float
    ) -> list[Message]: ...

    @abstractmethod
    def _ack(self, receipt: str) -> bool: ...

    @abstractmethod
    def _change_visibility(self, receipt: str, timeout: float) -> bool: ...
