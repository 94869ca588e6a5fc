"""The small vocabularies of the stack model: resource kinds, lifecycles, ingress, storage events.

They are ``StrEnum``s so the builder accepts either the enum or its plain string, and the manifest
JSON carries the plain string. Declaration order is the canonical order wherever a list of them
is written out (e.g. storage events are always ``["put", "delete"]`` in that order).
"""

from __future__ import annotations

from enum import StrEnum


class ResourceKind(StrEnum):
    STORAGE = "storage"
    VAULT = "vault"
    KV = "kv"
    QUEUE = "queue"
    FUNCTION = "function"


class Lifecycle(StrEnum):
    """Who may change a resource after it is first created.

    ``frozen`` resources are created once and then only monitored (typically the ones holding the
    customer's data); ``live`` ones the vendor keeps updating (code, configuration).
    """

    FROZEN = "frozen"
    LIVE = "live"


class Ingress(StrEnum):
    """Whether a function's HTTP app is reachable from outside its environment."""

    PRIVATE = "private"
    PUBLIC = "public"


class StorageEvent(StrEnum):
    PUT = "put"
    DELETE = "delete"


#: Kinds a function can be linked to (gets a binding for). Functions are not bindable resources.
BINDABLE_KINDS: frozenset[ResourceKind] = frozenset(
    {ResourceKind.STORAGE, ResourceKind.VAULT, ResourceKind.KV, ResourceKind.QUEUE}
)
