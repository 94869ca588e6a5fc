"""Prefixed, time-ordered identifiers (``dep_…``, ``rel_…``, ``grp_…``).

Why time-ordered: listing "newest first" and paging by id then need no extra index, and ids read in
the order things happened, which helps anyone scanning logs. 48 bits of milliseconds followed by 80
random bits (the ULID layout), written in lowercase Crockford base32 so ids are URL- and
shell-safe and never contain ``/`` (deployments are addressed as ``group/name``).

The random bits come from the operating system's CSPRNG, read 4 KiB at a time: a ``getrandom``
call per id cost a system call in the event loop for every command and lease — and each one let
the command writer's thread take the GIL for up to a switch interval.
"""

from __future__ import annotations

import os
import threading
import time

_ALPHABET = "0123456789abcdefghjkmnpqrstvwxyz"  # Crockford base32, lowercase

PREFIXES = frozenset({"grp", "gtk", "dep", "dtk", "rel", "dbg", "cmd", "lse"})
_RANDOM_BYTES = 10  # 80 bits
_REFILL = 4096


class _RandomPool:
    """Bytes of ``os.urandom``, handed out once each (under a lock: ids are made on threads)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._buffer = b""
        self._at = 0
        # A forked child must never hand out its parent's bytes again.
        os.register_at_fork(after_in_child=self._forget)

    def _forget(self) -> None:
        self._lock = threading.Lock()
        self._buffer, self._at = b"", 0

    def take(self, size: int) -> bytes:
        with self._lock:
            if self._at + size > len(self._buffer):
                self._buffer, self._at = os.urandom(_REFILL), 0
            chunk = self._buffer[self._at : self._at + size]
            self._at += size
            return chunk


_POOL = _RandomPool()


def _base32(value: int, length: int) -> str:
    chars = []
    for _ in range(length):
        chars.append(_ALPHABET[value & 31])
        value >>= 5
    return "".join(reversed(chars))


def new_id(prefix: str) -> str:
    """A fresh id such as ``dep_01jd3k…``: 26 base32 characters after the prefix."""
    if prefix not in PREFIXES:
        raise ValueError(f"unknown id prefix {prefix!r}")
    millis = time.time_ns() // 1_000_000
    value = (millis << 80) | int.from_bytes(_POOL.take(_RANDOM_BYTES))
    return f"{prefix}_{_base32(value, 26)}"


def has_prefix(value: str, prefix: str) -> bool:
    """Whether ``value`` looks like an id of that kind (used to tell ids from names)."""
    return value.startswith(prefix + "_") and len(value) == len(prefix) + 27
