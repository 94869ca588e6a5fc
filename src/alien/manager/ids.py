"""Prefixed, time-ordered identifiers (``dep_…``, ``rel_…``, ``grp_…``).

Why time-ordered: listing "newest first" and paging by id then need no extra index, and ids read in
the order things happened, which helps anyone scanning logs. 48 bits of milliseconds followed by 80
random bits (the ULID layout), written in lowercase Crockford base32 so ids are URL- and
shell-safe and never contain ``/`` (deployments are addressed as ``group/name``).
"""

from __future__ import annotations

import secrets
import time

_ALPHABET = "0123456789abcdefghjkmnpqrstvwxyz"  # Crockford base32, lowercase

PREFIXES = frozenset({"grp", "gtk", "dep", "dtk", "rel", "dbg", "cmd", "lse"})


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
    value = (millis << 80) | secrets.randbits(80)
    return f"{prefix}_{_base32(value, 26)}"


def has_prefix(value: str, prefix: str) -> bool:
    """Whether ``value`` looks like an id of that kind (used to tell ids from names)."""
    return value.startswith(prefix + "_") and len(value) == len(prefix) + 27
