"""Tamper-evident audit trail: the record, its canonical form, sealing, and verification. Pure.

Each :class:`AuditRecord` carries the hash of the record before it (``prev_hash``) and its own
``hash`` = sha256 of its canonical form (every field but ``hash`` and ``signature``, so including
``seq`` and ``prev_hash``), signed with the manager's Ed25519 key. Editing, removing, inserting,
reordering or re-hashing a record breaks a hash, a link or a signature, and
:func:`verify_chain` says which record and how. Removing records *from the end* leaves a valid
shorter chain; that is caught only against a head (:class:`ChainHead`, ``seq`` + ``hash``) that was
published earlier and kept elsewhere — pass it as ``expected_head``.

**Per-deployment chains.** A customer may see only their deployment's records, so they cannot
follow the global ``prev_hash`` links (those point at other customers' records). Every record with
a ``deployment_id`` therefore also carries ``deployment_seq`` (1, 2, … within that deployment) and
``deployment_prev_hash`` (the ``hash`` of that deployment's previous record), both covered by the
hash and signature. The filtered view is thus a chain of its own, verifiable with
:func:`verify_deployment_chain` and the manager's public key alone; its head is
``ChainHead(seq=deployment_seq, hash=hash)``.

How the manager uses this module (it does the I/O; nothing here reads a clock or a file):

1. Key: ``Signer.generate()`` once, ``signer.to_pem()`` written 0600 into the data dir,
   ``Signer.from_pem(data)`` at start; publish ``signer.verifier.to_pem()`` (the public key) so
   customers can verify. Old public keys stay valid for old records (``key_id`` names the key).
2. Append, in ONE transaction that serialises appends (SQLite ``BEGIN IMMEDIATE``; PostgreSQL a
   row lock or advisory lock), so two writers never seal onto the same predecessor::

       draft = AuditDraft(time=utcnow(), actor=Actor(kind="api_key", id=key_id, role="admin"),
                          action="release.create", target=release_id, outcome="succeeded",
                          deployment_id=None, details=redact(details))
       prev = <row with the highest seq, or None>
       dep_prev = <row with the highest seq for draft.deployment_id, or None>  # if it has one
       record = seal(prev, draft, signer, deployment_prev=dep_prev)
       <insert record.to_dict() (or record.to_json() verbatim)>

   Storing columns is fine: ``time`` in a timezone-aware column (the manager's ``UTCDateTime``)
   and ``details`` as JSON/JSONB give back the same hash — the canonical form fixes key order,
   number spelling and time format. Naive datetimes are refused rather than guessed.
3. Verify: ``verify_chain(rows, verifier, expected_head=published_head)``; rows may be
   :class:`AuditRecord`\\ s, dicts or JSON text, in ``seq`` order, and can be streamed (memory is
   per deployment, not per record). ``anchor=`` verifies a window starting after a trusted head.
4. Customers: ``verify_deployment_chain(rows_of_their_deployment, verifier, deployment_id,
   expected_head=their_published_head)``.

``details`` and ``target`` must already be redacted (see :mod:`alien.redaction`): the audit log is
kept forever and shown to customers, so a secret in it could never be taken back.
"""

from __future__ import annotations

import enum
import hashlib
import json
import math
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Annotated, Any, Literal, NamedTuple

import nacl.signing
import orjson
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from pydantic import AfterValidator, Field, JsonValue, StringConstraints, model_validator

from alien.errors import ValidationError
from alien.protocol.wire import Timestamp, WireModel, parse

FORMAT_VERSION = 1
"""Version of the canonical form; part of every hash so a future format cannot be confused."""

GENESIS_HASH = "0" * 64
"""``prev_hash`` of the first record (and ``deployment_prev_hash`` of a deployment's first)."""

MAX_DETAILS_BYTES = 64 * 1024
"""Largest canonical ``details``: the audit log is kept forever, so bodies belong elsewhere."""

_SIGNING_CONTEXT = b"alien.audit.v1\x00"
# Signatures are over this prefix + the raw digest, so an audit signature can never be replayed
# as a signature over anything else the same key might sign.

# --- field types --------------------------------------------------------------------------------

Hash = Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{64}$", strict=True)]
Signature = Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{128}$", strict=True)]
KeyId = Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{16}$", strict=True)]
Identifier = Annotated[
    str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9._:@/-]{0,127}$", strict=True)
]
"""An id or name (``key_…``, ``dep_…``, ``group/name``): 1-128 safe characters."""
ActionName = Annotated[
    str,
    StringConstraints(
        pattern=r"^[a-z][a-z0-9_]*(?:\.[a-z][a-z0-9_]*)+$", max_length=128, strict=True
    ),
]
"""Dotted, lowercase: ``release.create``, ``command.invoke``, ``debug.session.open``."""
Role = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_-]{0,31}$", strict=True)]


def _utf8(value: str) -> str:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("not encodable as UTF-8 (lone surrogate)") from None
    return value


Target = Annotated[
    str,
    StringConstraints(pattern=r"^[^\x00-\x1f\x7f]{1,512}$", strict=True),
    AfterValidator(_utf8),
]
"""What was acted on (``rel_…``, ``cmd_…``, ``GET s3://bucket/key``): printable, ≤ 512. Like
``details``, it must be redacted by the caller (a URL may carry a signature)."""


class ActorKind(enum.StrEnum):
    API_KEY = "api_key"
    DEPLOYMENT = "deployment"
    GROUP_TOKEN = "group_token"
    DEBUG_SESSION = "debug_session"
    SYSTEM = "system"


class Outcome(enum.StrEnum):
    ALLOWED = "allowed"  # a decision was taken in favour (e.g. a debug session approved)
    DENIED = "denied"  # refused by authorisation or policy
    SUCCEEDED = "succeeded"
    FAILED = "failed"


def _check_details(value: dict[str, JsonValue]) -> dict[str, JsonValue]:
    """Refuse what would not survive storage unchanged, so the hash stays verifiable.

    NUL characters cannot be stored in PostgreSQL JSONB, lone surrogates cannot be encoded as
    UTF-8, and NaN/infinity are not JSON. The size bound keeps request bodies out of the log.
    """
    _check_json(value, "details")
    size = len(canonical_json(value))
    if size > MAX_DETAILS_BYTES:
        raise ValueError(
            f"details are {size} bytes in canonical form (at most {MAX_DETAILS_BYTES})"
        )
    return value


def _check_json(value: Any, path: str) -> None:
    if isinstance(value, str):
        if "\x00" in value:
            raise ValueError(f"{path}: NUL characters are not allowed")
        try:
            _utf8(value)
        except ValueError as exc:
            raise ValueError(f"{path}: {exc}") from None
    elif isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"{path}: NaN and infinity are not JSON")
    elif isinstance(value, dict):
        for key, item in value.items():
            _check_json(key, f"{path} (a key)")
            _check_json(item, f"{path}.{key}")
    elif isinstance(value, list):
        for index, item in enumerate(value):
            _check_json(item, f"{path}.{index}")


Details = Annotated[dict[str, JsonValue], AfterValidator(_check_details)]


# --- canonical form -----------------------------------------------------------------------------


def format_time(value: datetime) -> str:
    """RFC 3339 in UTC with microseconds and ``Z``: ``2026-01-02T03:04:05.000006Z``."""
    if value.tzinfo is None:
        raise ValidationError("audit times must be timezone-aware", field="time")
    return value.astimezone(UTC).replace(tzinfo=None).isoformat(timespec="microseconds") + "Z"


def _plain(value: Any) -> Any:
    """JSON-ready, spelled one way: enums as values, times via :func:`format_time`, integral
    floats as integers. (Exact plain types are tested first: sealing runs this on every record,
    and the abstract-class checks below cost most of its time.)"""
    kind = type(value)
    if kind is str or kind is int or kind is bool or value is None:
        return value
    if kind is dict:
        return {str(key): _plain(item) for key, item in value.items()}
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, datetime):
        return format_time(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError("NaN and infinity are not JSON")
        # Integral floats are written as integers, and by their shortest decimal: PostgreSQL JSONB
        # gives ``1.0`` back as ``1`` and ``1e300`` as a 301-digit integer.
        return int(Decimal(repr(value))) if value.is_integer() else _Float(value)
    if isinstance(value, Mapping):
        return {str(key): _plain(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(item) for item in value]
    return value


def canonical_json(value: Any) -> bytes:
    """The one byte spelling of a JSON value: sorted keys (by code point), no whitespace, UTF-8
    (not ``\\u`` escapes), floats in Python's shortest round-trip form, times per
    :func:`format_time`. Stable across a JSON, SQLite or PostgreSQL round trip."""
    return _dumps(_plain(value)).encode("utf-8")


class _Float(float):
    """A non-integral float as :func:`_plain` hands it on: ``orjson`` leaves float subclasses to
    :func:`_float_fragment`, which spells them as the ``json`` module does (``1e-07``, where
    ``orjson`` itself writes ``1e-7``). To everyone else it is a float."""


def _float_fragment(value: Any) -> orjson.Fragment:
    if isinstance(value, _Float):
        return orjson.Fragment(float.__repr__(value).encode())
    raise TypeError(f"{type(value).__name__} is not JSON")


def _dumps(plain: Any) -> str:
    """:func:`canonical_json` of a value :func:`_plain` already spelled, as text.

    ``orjson`` with sorted keys writes exactly what ``json.dumps(sort_keys=True,
    separators=(",", ":"), ensure_ascii=False)`` writes for :func:`_plain`'s output (a property
    test holds it to that), in a ninth of the time: sealing dumps every record twice. What it
    refuses (integers past 64 bits) is left to the ``json`` module."""
    try:
        return orjson.dumps(plain, default=_float_fragment, option=orjson.OPT_SORT_KEYS).decode()
    except orjson.JSONEncodeError:
        return json.dumps(
            plain, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
        )


# --- records ------------------------------------------------------------------------------------


class Actor(WireModel):
    """Who acted: an API key (with its role), a deployment's agent, a group token, a debug
    session, or the manager itself (``system``)."""

    kind: ActorKind
    id: Identifier
    role: Role | None = None


class AuditDraft(WireModel):
    """What happened, as the caller knows it; :func:`seal` turns it into an :class:`AuditRecord`."""

    time: Timestamp
    actor: Actor
    action: ActionName
    outcome: Outcome
    deployment_id: Identifier | None = None
    group_id: Identifier | None = None
    target: Target | None = None
    details: Details = Field(default_factory=dict)


class ChainHead(WireModel):
    """The last record of a chain as published: ``seq`` (``deployment_seq`` for a deployment's
    chain; 0 for an empty chain) and its ``hash``."""

    seq: int = Field(ge=0)
    hash: Hash


GENESIS = ChainHead(seq=0, hash=GENESIS_HASH)
"""The head of an empty chain."""


class AuditRecord(AuditDraft):
    """A sealed audit record: the draft plus its place in the chain(s), hash and signature."""

    v: Literal[1] = FORMAT_VERSION
    seq: int = Field(ge=1)
    prev_hash: Hash
    deployment_seq: int | None = Field(default=None, ge=1)
    deployment_prev_hash: Hash | None = None
    key_id: KeyId
    hash: Hash
    signature: Signature

    @model_validator(mode="after")
    def _deployment_chain_fields(self) -> AuditRecord:
        scoped = self.deployment_id is not None
        if (self.deployment_seq is not None) != scoped or (
            self.deployment_prev_hash is not None
        ) != scoped:
            raise ValueError(
                "deployment_seq and deployment_prev_hash go with deployment_id, and only with it"
            )
        return self

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON types, every field written out (the shape :func:`parse_record` reads)."""
        return _plain(self.model_dump())

    def to_json(self) -> str:
        """Canonical JSON text of the whole record (a good way to store it verbatim)."""
        return canonical_json(self.model_dump()).decode("utf-8")

    def digest(self) -> str:
        """sha256 (hex) of the canonical form without ``hash`` and ``signature``."""
        body = self.model_dump(exclude={"hash", "signature"})
        return hashlib.sha256(canonical_json(body)).hexdigest()

    @property
    def head(self) -> ChainHead:
        """This record as the head of the global chain."""
        return ChainHead(seq=self.seq, hash=self.hash)

    @property
    def deployment_head(self) -> ChainHead | None:
        """This record as the head of its deployment's chain (``None`` without a deployment)."""
        if self.deployment_seq is None:
            return None
        return ChainHead(seq=self.deployment_seq, hash=self.hash)


SealedRecord = AuditRecord
"""Another name for :class:`AuditRecord` (a record is sealed by construction)."""


def parse_record(data: Any) -> AuditRecord:
    """An :class:`AuditRecord` from a dict or JSON text (a stored row); bad input raises
    :class:`~alien.errors.ValidationError` naming the field. Hashes are not checked here."""
    if isinstance(data, AuditRecord):
        return data
    return parse(AuditRecord, data)


# --- keys ---------------------------------------------------------------------------------------


def _key_id(public: Ed25519PublicKey) -> str:
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


class Verifier:
    """The manager's public key: checks record signatures. Safe to publish."""

    def __init__(self, public_key: Ed25519PublicKey) -> None:
        self._key = public_key
        self.key_id = _key_id(public_key)

    def __repr__(self) -> str:
        return f"Verifier(key_id={self.key_id!r})"

    @classmethod
    def from_pem(cls, data: bytes | str) -> Verifier:
        """From a ``-----BEGIN PUBLIC KEY-----`` (SubjectPublicKeyInfo) block."""
        try:
            key = serialization.load_pem_public_key(_as_bytes(data))
        except (ValueError, TypeError) as exc:
            raise ValidationError(f"not a PEM public key: {exc}", field="public_key") from None
        if not isinstance(key, Ed25519PublicKey):
            raise ValidationError("the public key is not an Ed25519 key", field="public_key")
        return cls(key)

    @classmethod
    def from_raw(cls, data: bytes) -> Verifier:
        """From the 32 raw public key bytes."""
        try:
            return cls(Ed25519PublicKey.from_public_bytes(data))
        except ValueError:
            raise ValidationError(
                "an Ed25519 public key is 32 raw bytes", field="public_key"
            ) from None

    def to_pem(self) -> bytes:
        return self._key.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )

    def to_raw(self) -> bytes:
        return self._key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)

    def verify(self, signature: bytes, message: bytes) -> bool:
        try:
            self._key.verify(signature, message)
        except InvalidSignature:
            return False
        return True


class Signer:
    """The manager's private audit key. ``repr`` never shows it; keep the PEM mode 0600."""

    def __init__(self, private_key: Ed25519PrivateKey) -> None:
        self._key = private_key
        # Ed25519 signatures are deterministic: libsodium's are OpenSSL's, in 60% of the time
        # (every audit record is signed, two per remote command).
        self._sodium = nacl.signing.SigningKey(self.to_raw())
        self.verifier = Verifier(private_key.public_key())
        self.key_id = self.verifier.key_id

    def __repr__(self) -> str:
        return f"Signer(key_id={self.key_id!r})"

    @classmethod
    def generate(cls) -> Signer:
        return cls(Ed25519PrivateKey.generate())

    @classmethod
    def from_pem(cls, data: bytes | str, password: bytes | None = None) -> Signer:
        """From a PKCS#8 ``-----BEGIN PRIVATE KEY-----`` block (encrypted if ``password``)."""
        try:
            key = serialization.load_pem_private_key(_as_bytes(data), password=password)
        except (ValueError, TypeError) as exc:
            # cryptography's messages say what is wrong (bad password, not PEM) without the key.
            raise ValidationError(
                f"not a usable PEM private key: {exc}", field="signing_key"
            ) from None
        if not isinstance(key, Ed25519PrivateKey):
            raise ValidationError("the signing key is not an Ed25519 key", field="signing_key")
        return cls(key)

    @classmethod
    def from_raw(cls, data: bytes) -> Signer:
        """From the 32-byte private seed."""
        try:
            return cls(Ed25519PrivateKey.from_private_bytes(data))
        except ValueError:
            raise ValidationError(
                "an Ed25519 private key is a 32-byte seed", field="signing_key"
            ) from None

    def to_pem(self, password: bytes | None = None) -> bytes:
        encryption: serialization.KeySerializationEncryption = (
            serialization.BestAvailableEncryption(password)
            if password
            else serialization.NoEncryption()
        )
        return self._key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption
        )

    def to_raw(self) -> bytes:
        return self._key.private_bytes(
            serialization.Encoding.Raw,
            serialization.PrivateFormat.Raw,
            serialization.NoEncryption(),
        )

    def sign(self, message: bytes) -> bytes:
        return self._sodium.sign(message).signature


def _as_bytes(data: bytes | str) -> bytes:
    # PEM is ASCII; anything else becomes "?" and fails to load (no key character is echoed).
    return data.encode("ascii", "replace") if isinstance(data, str) else data


def signing_payload(digest: str) -> bytes:
    """The bytes a record's signature covers: a fixed context string + the raw sha256 digest.

    Public so a customer can check records with any Ed25519 tool, not only this module.
    """
    return _SIGNING_CONTEXT + bytes.fromhex(digest)


# --- sealing ------------------------------------------------------------------------------------


def seal(
    prev: AuditRecord | None,
    draft: AuditDraft,
    signer: Signer,
    *,
    deployment_prev: AuditRecord | None = None,
) -> AuditRecord:
    """Chain ``draft`` after ``prev`` (``None`` for the very first record) and sign it.

    ``deployment_prev`` is the latest record of ``draft.deployment_id`` (``None`` when this is the
    deployment's first). Passing a stale one forks the deployment's chain, which
    :func:`verify_chain` reports; refusing it here is not possible without the whole log.
    """
    return seal_with_json(prev, draft, signer, deployment_prev=deployment_prev)[0]


def seal_with_json(
    prev: AuditRecord | None,
    draft: AuditDraft,
    signer: Signer,
    *,
    deployment_prev: AuditRecord | None = None,
) -> tuple[AuditRecord, str]:
    """:func:`seal`, and the record's :meth:`AuditRecord.to_json` text, computed on the way (an
    append stores both: spelling the record once more would cost as much as sealing it)."""
    seq = 1 if prev is None else prev.seq + 1
    prev_hash = GENESIS_HASH if prev is None else prev.hash
    deployment_seq: int | None = None
    deployment_prev_hash: str | None = None
    if draft.deployment_id is None:
        if deployment_prev is not None:
            raise ValidationError(
                "deployment_prev given for a record without deployment_id", field="deployment_prev"
            )
    elif deployment_prev is None:
        deployment_seq, deployment_prev_hash = 1, GENESIS_HASH
    else:
        if deployment_prev.deployment_id != draft.deployment_id:
            raise ValidationError(
                "deployment_prev belongs to another deployment", field="deployment_prev"
            )
        if deployment_prev.seq >= seq or deployment_prev.deployment_seq is None:
            raise ValidationError("deployment_prev is not before prev", field="deployment_prev")
        deployment_seq = deployment_prev.deployment_seq + 1
        deployment_prev_hash = deployment_prev.hash
    chain = {
        "v": FORMAT_VERSION,
        "seq": seq,
        "prev_hash": prev_hash,
        "deployment_seq": deployment_seq,
        "deployment_prev_hash": deployment_prev_hash,
        "key_id": signer.key_id,
    }
    # The digest covers every field of the record but ``hash`` and ``signature``: the draft's
    # own, dumped once, and the chain's (``AuditRecord.digest`` recomputes it from the record).
    body = _plain({**draft.model_dump(), **chain})
    digest = hashlib.sha256(_dumps(body).encode("utf-8")).hexdigest()
    signature = signer.sign(signing_payload(digest)).hex()
    # Not validated again: the draft was, and the chain fields above are valid by construction.
    record = AuditRecord.model_construct(**dict(draft), **chain, hash=digest, signature=signature)
    return record, _dumps({**body, "hash": digest, "signature": signature})


# --- verification -------------------------------------------------------------------------------


class ProblemKind(enum.StrEnum):
    """What :func:`verify_chain` found; values are stable (shown in reports and the API)."""

    MALFORMED = "malformed"  # not a valid record at all
    HASH_MISMATCH = "hash_mismatch"  # content edited after sealing
    BAD_SIGNATURE = "bad_signature"  # hash recomputed without the key, or signature altered
    UNKNOWN_KEY = "unknown_key"  # signed by a key the verifier does not know
    SEQ_GAP = "seq_gap"  # records missing before this one
    SEQ_ORDER = "seq_order"  # out of order or repeated (swapped, duplicated)
    PREV_HASH_MISMATCH = "prev_hash_mismatch"  # link to the previous record broken
    DEPLOYMENT_SEQ_GAP = "deployment_seq_gap"
    DEPLOYMENT_SEQ_ORDER = "deployment_seq_order"
    DEPLOYMENT_PREV_HASH_MISMATCH = "deployment_prev_hash_mismatch"
    WRONG_DEPLOYMENT = "wrong_deployment"  # a foreign record in a deployment's view
    TRUNCATED = "truncated"  # ends before the expected head
    HEAD_MISMATCH = "head_mismatch"  # the record at the expected head's seq is another one


class Problem(NamedTuple):
    seq: int | None  # the global ``seq`` of the record concerned (None if unreadable / at end)
    kind: ProblemKind
    message: str


@dataclass(frozen=True)
class VerifyReport:
    """The outcome of a verification. ``head`` is the last record read, as a head of the chain
    verified (deployment-scoped for :func:`verify_deployment_chain`): publish or anchor on it."""

    checked: int
    problems: tuple[Problem, ...]
    head: ChainHead | None

    @property
    def ok(self) -> bool:
        return not self.problems


@dataclass
class _Link:
    """Follows one chain (global or one deployment's) and reports broken links."""

    label: str
    next_seq: int
    prev_hash: str | None  # None: unknown (window started mid-chain), accept the first link
    gap: ProblemKind
    order: ProblemKind
    mismatch: ProblemKind
    last: ChainHead | None = None

    def step(self, seq: int, prev_hash: str, own: str, at: int, out: list[Problem]) -> None:
        if seq != self.next_seq:
            kind = self.gap if seq > self.next_seq else self.order
            out.append(Problem(at, kind, f"{self.label}: expected seq {self.next_seq}, got {seq}"))
        elif self.prev_hash is not None and prev_hash != self.prev_hash:
            out.append(
                Problem(at, self.mismatch, f"{self.label}: seq {seq} does not follow seq {seq - 1}")
            )
        self.next_seq, self.prev_hash = seq + 1, own  # resynchronise: report each break once
        self.last = ChainHead(seq=seq, hash=own)


@dataclass
class _HeadCheck:
    """Compares a chain against the head published for it (``start``: where reading began)."""

    expected: ChainHead | None
    start: ChainHead
    seen: bool = False
    problems: list[Problem] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.expected is not None and self.expected.seq <= self.start.seq:
            # The head lies at or before the window: only the anchor itself can be compared.
            self.seen = True
            if self.expected.seq == self.start.seq and self.expected.hash != self.start.hash:
                message = "the anchor is not the published head"
                self.problems.append(Problem(None, ProblemKind.HEAD_MISMATCH, message))

    def step(self, seq: int, own: str, at: int) -> None:
        if self.expected is None or seq != self.expected.seq:
            return
        self.seen = True
        if own != self.expected.hash:
            self.problems.append(
                Problem(
                    at, ProblemKind.HEAD_MISMATCH, f"record at seq {seq} is not the published head"
                )
            )

    def finish(self, last: ChainHead | None) -> list[Problem]:
        expected = self.expected
        if expected is None or self.seen:
            return self.problems
        if last is None or last.seq < expected.seq:
            message = f"chain ends at seq {last.seq if last else 0}, before the head {expected.seq}"
            return [*self.problems, Problem(None, ProblemKind.TRUNCATED, message)]
        message = f"the published head seq {expected.seq} is missing"
        return [*self.problems, Problem(None, ProblemKind.HEAD_MISMATCH, message)]


def _keyring(verifier: Verifier | Iterable[Verifier]) -> dict[str, Verifier]:
    keys = [verifier] if isinstance(verifier, Verifier) else list(verifier)
    return {key.key_id: key for key in keys}


def _read(items: Iterable[Any], out: list[Problem]) -> Iterator[AuditRecord]:
    """Parse each item; unreadable ones become problems and are skipped."""
    for index, item in enumerate(items):
        try:
            yield parse_record(item)
        except ValidationError as exc:
            seq = item.get("seq") if isinstance(item, Mapping) else None
            at = seq if isinstance(seq, int) and not isinstance(seq, bool) else None
            out.append(Problem(at, ProblemKind.MALFORMED, f"item {index}: {exc.message}"))


def _check_seal(record: AuditRecord, keys: Mapping[str, Verifier], out: list[Problem]) -> None:
    digest = record.digest()
    if digest != record.hash:
        out.append(Problem(record.seq, ProblemKind.HASH_MISMATCH, "content does not match hash"))
        return
    key = keys.get(record.key_id)
    if key is None:
        out.append(Problem(record.seq, ProblemKind.UNKNOWN_KEY, f"key {record.key_id} unknown"))
    elif not key.verify(bytes.fromhex(record.signature), signing_payload(digest)):
        out.append(Problem(record.seq, ProblemKind.BAD_SIGNATURE, "signature does not verify"))


def _deployment_link(label: str, start: ChainHead | None) -> _Link:
    return _Link(
        label=label,
        next_seq=start.seq + 1 if start else 1,
        prev_hash=start.hash if start else GENESIS_HASH,
        gap=ProblemKind.DEPLOYMENT_SEQ_GAP,
        order=ProblemKind.DEPLOYMENT_SEQ_ORDER,
        mismatch=ProblemKind.DEPLOYMENT_PREV_HASH_MISMATCH,
    )


def verify_chain(
    records: Iterable[AuditRecord | Mapping[str, Any] | str | bytes],
    verifier: Verifier | Iterable[Verifier],
    *,
    anchor: ChainHead | None = None,
    expected_head: ChainHead | None = None,
) -> VerifyReport:
    """Verify the whole log (or the window after ``anchor``), records in ``seq`` order.

    Checks every record's hash and signature, the global links, and every deployment's own
    chain. With ``anchor`` (a head trusted from an earlier run) the window must continue it; a
    deployment's first record in the window is then taken as its starting point. With
    ``expected_head`` (published earlier) a shortened log is reported (``truncated``).
    """
    keys = _keyring(verifier)
    problems: list[Problem] = []
    start = anchor or GENESIS
    chain = _Link(
        "chain",
        start.seq + 1,
        start.hash,
        ProblemKind.SEQ_GAP,
        ProblemKind.SEQ_ORDER,
        ProblemKind.PREV_HASH_MISMATCH,
    )
    deployments: dict[str, _Link] = {}
    head = _HeadCheck(expected_head, start)
    checked = 0
    for record in _read(records, problems):
        checked += 1
        _check_seal(record, keys, problems)
        chain.step(record.seq, record.prev_hash, record.hash, record.seq, problems)
        head.step(record.seq, record.hash, record.seq)
        if record.deployment_id is None:
            continue
        assert record.deployment_seq is not None and record.deployment_prev_hash is not None
        link = deployments.get(record.deployment_id)
        if link is None:
            label = f"deployment {record.deployment_id}"
            link = _deployment_link(label, None)
            if anchor is not None and anchor.seq > 0:  # its earlier records are outside the window
                link.next_seq, link.prev_hash = record.deployment_seq, None
            deployments[record.deployment_id] = link
        link.step(
            record.deployment_seq, record.deployment_prev_hash, record.hash, record.seq, problems
        )
    problems.extend(head.finish(chain.last or anchor))
    return VerifyReport(checked=checked, problems=tuple(problems), head=chain.last or anchor)


def verify_deployment_chain(
    records: Iterable[AuditRecord | Mapping[str, Any] | str | bytes],
    verifier: Verifier | Iterable[Verifier],
    deployment_id: str,
    *,
    anchor: ChainHead | None = None,
    expected_head: ChainHead | None = None,
) -> VerifyReport:
    """Verify one deployment's records alone (what its customer is shown), in ``seq`` order.

    Needs nothing but those records and the manager's public key. ``anchor`` and
    ``expected_head`` are deployment heads (``seq`` = ``deployment_seq``).
    """
    keys = _keyring(verifier)
    problems: list[Problem] = []
    link = _deployment_link(f"deployment {deployment_id}", anchor)
    head = _HeadCheck(expected_head, anchor or GENESIS)
    last_seq = 0
    checked = 0
    for record in _read(records, problems):
        checked += 1
        if record.deployment_id != deployment_id:
            message = f"record of {record.deployment_id or 'no deployment'} in this view"
            problems.append(Problem(record.seq, ProblemKind.WRONG_DEPLOYMENT, message))
            continue
        assert record.deployment_seq is not None and record.deployment_prev_hash is not None
        _check_seal(record, keys, problems)
        if record.seq <= last_seq:
            message = f"global seq {record.seq} after {last_seq}"
            problems.append(Problem(record.seq, ProblemKind.SEQ_ORDER, message))
        last_seq = record.seq
        link.step(
            record.deployment_seq, record.deployment_prev_hash, record.hash, record.seq, problems
        )
        head.step(record.deployment_seq, record.hash, record.seq)
    problems.extend(head.finish(link.last or anchor))
    return VerifyReport(checked=checked, problems=tuple(problems), head=link.last or anchor)
