"""The one place that decides what must never leave the process in clear: logs, audit details,
API errors and telemetry all pass through a :class:`Redactor`.

Two complementary nets, applied in this order:

1. **Known secrets** — values registered at runtime with :meth:`Redactor.add_secret` (a vault value
   as it is read, a token as it is issued, a key as it is loaded) are replaced by ``[REDACTED]``
   wherever they occur, including their JSON-escaped and URL-encoded spellings and, for multi-line
   values, each line on its own (a logger that splits lines must not leak a PEM key line by line).
   They are compiled into one regular expression shaped as a trie (shared prefixes factored out),
   so matching cost grows with the depth of the trie rather than with the number of secrets
   (1 MB of logs: ~60 ms with 10 secrets, ~85 ms with 1,000, ~95 ms with 10,000), plus a small
   second one for recent additions so that registering a secret never recompiles them all.
2. **Secret-shaped strings** — things that are secrets whoever produced them: alien tokens
   (``ax_key_…``, ``ax_dg_…``, ``ax_dep_…``, ``ax_dbg_…``; the public 16-hex lookup part is kept so
   an operator can still tell which key it was), AWS access key ids (``AKIA…``/``ASIA…``), PEM
   private key blocks, JWTs, passwords in URLs (``scheme://user:pass@``), ``Bearer`` credentials,
   and the value of any ``key=value`` / ``key: value`` / ``"key": "value"`` pair whose key names a
   secret (``password``, ``secret``, ``token``, ``authorization``, ``api_key``, ``cookie``,
   ``credential``, ``signature``, … — which covers ``aws_secret_access_key=``, ``Signature=`` and
   ``X-Amz-Signature=`` of SigV4, ``X-Amz-Security-Token``, ``Authorization: Bearer …``).

Why values shorter than :data:`MIN_SECRET_LENGTH` (6) characters are not registered: a short value
such as ``"true"``, ``"admin"`` or ``"1234"`` occurs everywhere by chance, so replacing it would
mangle ordinary output — and worse, every ``[REDACTED]`` would then point at the places the secret
happens to appear, an oracle that reveals it. Such a value is not a secret worth the name anyway.

Use:

* :func:`default_redactor` — the process-wide instance every layer shares; :func:`add_secret` and
  :func:`redact` are shortcuts to it. :class:`Redactor()` makes an isolated one (tests).
* :meth:`Redactor.redact_text` (str), :meth:`~Redactor.redact_bytes` (bytes, any encoding:
  decoded as UTF-8 with ``surrogateescape`` so every byte string round-trips exactly),
  :meth:`~Redactor.redact_json` (nested dict/list: values under secret-named keys are masked
  whole, every string is redacted), :meth:`~Redactor.redact` (any of these).
* :class:`RedactingFilter` and :func:`install_logging_redaction` for :mod:`logging`.

Redaction is idempotent: redacting redacted output changes nothing. Masking errs on the side of
hiding: a bare value runs to the next space, quote, ``&``, ``,`` or ``;``, and a field named like a
secret is masked even when it holds none (``token_count=3``).
"""

from __future__ import annotations

import contextlib
import functools
import itertools
import json
import logging
import re
import threading
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Final
from urllib.parse import quote, quote_plus

REDACTED: Final = "[REDACTED]"
"""What a secret is replaced with."""

MIN_SECRET_LENGTH: Final = 6
"""Shorter values are not registered as known secrets (see the module docstring for why)."""

SENSITIVE_WORDS: Final = frozenset(
    {
        "apikey",
        "authorization",
        "cookie",
        "credential",
        "credentials",
        "passphrase",
        "passwd",
        "password",
        "privatekey",
        "pwd",
        "secret",
        "secrets",
        "signature",
        "token",
    }
)
"""A key containing one of these words (after splitting on ``_ - .`` and camelCase) is secret."""

SENSITIVE_PAIRS: Final = frozenset({("api", "key"), ("private", "key"), ("secret", "key")})
"""Adjacent word pairs that name a secret although neither word alone does (``api_key``)."""

DEFAULT_LOGGERS: Final = ("", "uvicorn", "uvicorn.error", "uvicorn.access")
"""Loggers :func:`install_logging_redaction` covers: root, and uvicorn's (they do not propagate)."""

_MAX_ROUNDS: Final = 16
_MEMO_TEXT: Final = 64
_MEMO_ENTRIES: Final = 4096
# Short strings — JSON keys, audit details, log fields — repeat all the time, and each costs a
# pass of every pattern: their results are remembered (up to _MEMO_ENTRIES of up to _MEMO_TEXT
# characters) until the registered secrets change.
_FRESH_LIMIT: Final = 64

_WORD = re.compile(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+|[0-9]+")


@functools.lru_cache(maxsize=4096)
def is_sensitive_key(key: str) -> bool:
    """Whether a field/parameter/header name denotes a secret value.

    Word-based rather than substring-based so ``max_tokens`` or ``keyboard`` stay readable while
    ``access_token``, ``clientSecret``, ``X-Amz-Security-Token`` and ``API_KEY`` are masked.
    """
    words = [w.lower() for w in _WORD.findall(key)]
    if any(word in SENSITIVE_WORDS for word in words):
        return True
    return any(pair in SENSITIVE_PAIRS for pair in itertools.pairwise(words))


# --- secret-shaped patterns ---------------------------------------------------------------------
#
# One compiled pattern per shape, applied one after another. Each starts with a literal where it
# can (``eyJ``, ``ax_``, ``://``, ``-----BEGIN``), with the "not inside a word" check written as a
# lookbehind *after* that literal: ``re`` then skips to candidate positions at C speed instead of
# trying every pattern at every character, which made one big alternation ~4x slower.

# A key worth looking at contains one of these stems; the word check above has the last say.
_STEMS = r"(?i:pass|pwd|secret|token|auth|cookie|credential|key|signature)"
# Cheap test first (a word directly followed by ``=``/``:``), the stem scan only then.
_KEY = (
    rf"(?=[A-Za-z][\w.-]{{0,63}}+\\*[\"']?[ \t]*[=:])(?=[\w.-]{{0,64}}?{_STEMS})"
    r"[A-Za-z][\w.-]{0,63}"
)
_QUOTED_VALUE = r"\"(?:[^\"\\\n]|\\.)*\"|'(?:[^'\\\n]|\\.)*'"
# JSON inside a JSON string (a log line embedding a body): ``{\"password\": \"x\"}``.
_ESCAPED_VALUE = r"\\+\"(?:(?!\\+\")[^\n])*\\+\""
_QUOTE_PREFIX = re.compile(r"\\*[\"']")
# A bare value never starts with ``{``/``[``: a nested object is left for its own pairs to be
# checked (masking only its first character would mangle it and keep the rest); inside JSON-like
# text (a quoted key) it also stops at ``}``/``]`` so ``{"pin_secret":1234}`` keeps its brace.
_BARE_VALUE = r"[^\s\"'&,;<>{\[][^\s\"'&,;<>]*"
_JSON_BARE_VALUE = r"[^\s\"'&,;<>{}\[\]]+"
_PROSE_WORDS: Final = frozenset(
    {"credential", "credentials", "secret", "secrets", "signature", "token"}
)
_SCHEME = r"(?i:bearer|basic|digest|negotiate|token|aws4-hmac-sha256)[ \t]+"

_PEM = re.compile(
    r"-----BEGIN (?P<label>[A-Z0-9 ]{0,40}PRIVATE KEY)-----"
    r"[\s\S]*?(?:(?P<end>-----END (?P=label)-----)|\Z)"
)
_JWT = re.compile(r"eyJ(?<![\w-]eyJ)[A-Za-z0-9_-]{5,}\.eyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]*")
_ALIEN_TOKEN = re.compile(
    r"(?P<head>ax_(?<![A-Za-z0-9]ax_)(?:key|dg|dep|dbg)_)"
    # a lookup-shaped prefix is always taken as the lookup, so redacted output never matches
    r"(?:(?P<lookup>[0-9a-f]{16})_|(?![0-9a-f]{16}_))[A-Za-z0-9_-]{16,}"
)
_AWS_KEY_ID = re.compile(r"A(?<![A-Z0-9]A)[KS]IA[A-Z0-9]{16}(?![A-Z0-9])")
_URL_PASSWORD = re.compile(r"(?P<head>://[^\s:/@]*:)[^\s/@]+(?=@)")
_QUOTED_PAIR = re.compile(
    rf"(?P<head>(?P<q>[\"'])(?P<key>{_KEY})\\*(?P=q)\s*[:=]\s*)"
    rf"(?P<value>{_QUOTED_VALUE}|{_ESCAPED_VALUE}|{_JSON_BARE_VALUE})"
)
_BARE_PAIR = re.compile(
    rf"(?P<head>(?<![\w.-])(?P<key>{_KEY})"
    rf"(?:[ \t]*=(?!=)[ \t]*|(?P<colon>:)[ \t]*)(?>(?:{_SCHEME})?))"
    rf"(?P<value>{_QUOTED_VALUE}|{_BARE_VALUE})"
)
_BEARER = re.compile(r"(?P<head>(?i:bearer)(?<!\w(?i:bearer))[ \t]+)[A-Za-z0-9._~+/=-]{16,}")


def _mask_value(value: str) -> str:
    """Mask a value, keeping its quotes (escaped or not) so the surrounding syntax stays valid."""
    quote = _QUOTE_PREFIX.match(value)
    if quote and len(value) > len(quote[0]) and value.endswith(quote[0]):
        return f"{quote[0]}{REDACTED}{quote[0]}"
    return REDACTED


def _replace_pem(m: re.Match[str]) -> str:
    label = m["label"]
    tail = f"-----END {label}-----" if m["end"] else ""
    return f"-----BEGIN {label}-----{REDACTED}{tail}"


def _replace_alien_token(m: re.Match[str]) -> str:
    lookup = f"{m['lookup']}_" if m["lookup"] else ""
    return f"{m['head']}{lookup}{REDACTED}"


def _replace_quoted_pair(m: re.Match[str]) -> str:
    head, value = m["head"], m["value"]
    if not is_sensitive_key(m["key"]):
        return m[0]
    if _QUOTE_PREFIX.match(value):
        return head + _mask_value(value)
    quote = m["q"]  # ``"pin_secret": 1234``: quote the mask so JSON stays JSON
    return f"{head}{quote}{REDACTED}{quote}"


def _replace_bare_pair(m: re.Match[str]) -> str:
    key = m["key"]
    # "The secret: keep it" is prose, not a field: a lone common word before a colon is left
    # alone, while ``password:`` and compound names (``X-Amz-Security-Token:``) are masked.
    if not is_sensitive_key(key) or (m["colon"] and key.lower() in _PROSE_WORDS):
        # Not a secret after all (``keyboard=…``); the value may still hold a nested pair
        # (a URL with ``?token=…``), which this pass would otherwise skip over.
        return m["head"] + _BARE_PAIR.sub(_replace_bare_pair, m["value"])
    return m["head"] + _mask_value(m["value"])


def _head_and_mask(m: re.Match[str]) -> str:
    return m["head"] + REDACTED


_SHAPES: Final[tuple[tuple[re.Pattern[str], Callable[[re.Match[str]], str] | str], ...]] = (
    (_PEM, _replace_pem),  # first: the lines inside a key block are nobody else's business
    (_JWT, REDACTED),
    (_ALIEN_TOKEN, _replace_alien_token),
    (_AWS_KEY_ID, REDACTED),
    (_URL_PASSWORD, _head_and_mask),
    (_QUOTED_PAIR, _replace_quoted_pair),
    (_BARE_PAIR, _replace_bare_pair),
    (_BEARER, _head_and_mask),
)


def _redact_shapes(text: str) -> str:
    for pattern, replacement in _SHAPES:
        text = pattern.sub(replacement, text)
    return text


# --- known secrets ------------------------------------------------------------------------------


def _trie_regex(values: Iterable[str]) -> str:
    """One alternation for many literals, with shared prefixes factored out.

    ``re`` tries alternatives one after another, so a flat ``a|b|c…`` of 1,000 secrets costs 1,000
    attempts per input position; the trie form decides on one character per level instead. A
    value ending where another continues becomes an optional tail (``abc(?:def)?``), tried first,
    so the longest secret wins.
    """
    root: dict[str, Any] = {}
    for value in values:
        node = root
        for char in value:
            node = node.setdefault(char, {})
        node[""] = {}

    def emit(node: dict[str, Any]) -> str:
        parts: list[str] = []
        while len(node) == 1 and "" not in node:  # a chain without branches: one literal run
            (char, node) = next(iter(node.items()))
            parts.append(re.escape(char))
        branches = [re.escape(char) + emit(child) for char, child in sorted(node.items()) if char]
        if branches:
            group = "(?:" + "|".join(branches) + ")"
            parts.append(group + "?" if "" in node else group)
        return "".join(parts)

    return emit(root)


def _compile_literals(values: set[str]) -> re.Pattern[str] | None:
    if not values:
        return None
    try:
        return re.compile(_trie_regex(values))
    except (RecursionError, re.error):
        # Hundreds of secrets that are prefixes of one another nest too deep for ``re``: fall
        # back to a flat alternation, longest first (slower, same result).
        flat = sorted(values, key=lambda v: (-len(v), v))
        return re.compile("|".join(map(re.escape, flat)))


def _spellings(secret: str) -> set[str]:
    """The ways a secret shows up in output: as is, JSON-escaped, URL-encoded, line by line."""
    forms = {secret, json.dumps(secret)[1:-1], json.dumps(secret, ensure_ascii=False)[1:-1]}
    with contextlib.suppress(UnicodeEncodeError):  # lone surrogates have no URL spelling
        forms.update(
            {
                quote(secret),  # in a URL path ("/" kept)
                quote(secret, safe=""),  # in a query value
                quote_plus(secret, safe=""),  # in a form body
            }
        )
    if "\n" in secret:
        forms.update(line.strip() for line in secret.splitlines())
    return {f for f in forms if len(f) >= MIN_SECRET_LENGTH and not _is_placeholder_text(f)}


def _is_placeholder_text(value: str) -> bool:
    """Whether ``value`` is made of placeholders only (``[REDACTED]``, ``ED][RED``, …).

    Such a value cannot be a real secret, and it could never be removed: every replacement
    would write it again. Refusing it is also what makes the repeat in ``redact_text`` end.
    """
    return value in REDACTED * (len(value) // len(REDACTED) + 2)


class _Literals:
    """The spellings of the registered secrets, compiled in two tiers (not thread-safe alone).

    Compiling 1,000 secrets takes ~0.2 s, too long to repeat for every vault value read at run
    time. New spellings therefore go to a small *fresh* pattern, cheap to rebuild; once it holds
    more than :data:`_FRESH_LIMIT`, everything moves into the large one. An addition thus costs
    about 1/64th of a full rebuild; a removal from the large tier costs a full one.
    """

    def __init__(self) -> None:
        self.counts: dict[str, int] = {}  # spelling -> how many registered secrets produce it
        self.fresh: set[str] = set()  # spellings not yet in the large pattern
        self.large: re.Pattern[str] | None = None
        self.small: re.Pattern[str] | None = None
        self.large_stale = False
        self.small_stale = False

    def add(self, form: str) -> None:
        self.counts[form] = self.counts.get(form, 0) + 1
        if self.counts[form] > 1:
            return
        self.fresh.add(form)
        self.small_stale = True
        if len(self.fresh) > _FRESH_LIMIT:
            self.fresh.clear()
            self.large_stale = True

    def remove(self, form: str) -> None:
        self.counts[form] -= 1
        if self.counts[form]:
            return
        del self.counts[form]
        if form in self.fresh:
            self.fresh.discard(form)
            self.small_stale = True
        else:
            self.large_stale = True

    def clear(self) -> None:
        self.counts.clear()
        self.fresh.clear()
        self.large_stale = self.small_stale = True

    @property
    def stale(self) -> bool:
        return self.large_stale or self.small_stale

    def compile(self) -> tuple[re.Pattern[str], ...]:
        if self.large_stale:
            self.large = _compile_literals(set(self.counts) - self.fresh)
            self.large_stale = False
        if self.small_stale:
            self.small = _compile_literals(self.fresh)
            self.small_stale = False
        return tuple(p for p in (self.large, self.small) if p is not None)


class Redactor:
    """Replaces secrets in text, bytes and JSON. Thread-safe; cheap to call when idle.

    Registration may happen from any thread (vault reads) while others redact (logging): the
    compiled patterns are swapped in atomically and rebuilt lazily on the next redaction.
    """

    def __init__(self, secrets: Iterable[str | bytes] = ()) -> None:
        # Reentrant: compiling the patterns allocates, the garbage collector may then run a
        # finalizer that logs (an asyncio task destroyed with an exception), and that log line
        # is redacted on the same thread — with a plain lock it waited for itself forever.
        self._lock = threading.RLock()
        self._secrets: set[str] = set()  # as registered (for discard)
        self._literals = _Literals()
        self._patterns: tuple[re.Pattern[str], ...] = ()
        self._memo: dict[str, str] = {}  # short text -> redacted, for the current secrets
        self._generation = 0  # bumped (and the memo replaced) whenever the secrets change
        for secret in secrets:
            self.add_secret(secret)

    def __repr__(self) -> str:  # never show the secrets themselves
        return f"<Redactor {len(self._secrets)} secrets>"

    def __len__(self) -> int:
        return len(self._secrets)

    def add_secret(self, value: str | bytes) -> bool:
        """Register a known secret; ``False`` when it is already known, too short, or made of
        placeholder text only (``[REDACTED]``: it could never be removed, see below)."""
        secret = _as_text(value)
        if len(secret) < MIN_SECRET_LENGTH or _is_placeholder_text(secret):
            return False
        with self._lock:
            if secret in self._secrets:
                return False
            self._secrets.add(secret)
            for form in _spellings(secret):
                self._literals.add(form)
            self._forget_memo()
        return True

    def discard_secret(self, value: str | bytes) -> bool:
        """Forget a secret (a revoked token, a closed debug session); ``True`` if it was known."""
        secret = _as_text(value)
        with self._lock:
            if secret not in self._secrets:
                return False
            self._secrets.discard(secret)
            for form in _spellings(secret):
                self._literals.remove(form)
            self._forget_memo()
        return True

    def clear(self) -> None:
        """Forget every registered secret (patterns still apply)."""
        with self._lock:
            self._secrets.clear()
            self._literals.clear()
            self._forget_memo()

    def _forget_memo(self) -> None:
        """Under the lock: results computed with the previous secrets are never served again,
        nor stored (a redaction that started before this sees another generation at its end)."""
        self._generation += 1
        self._memo = {}

    def _known(self) -> tuple[re.Pattern[str], ...]:
        if self._literals.stale:
            with self._lock:
                if self._literals.stale:
                    self._patterns = self._literals.compile()
        return self._patterns

    def redact_text(self, text: str) -> str:
        """``text`` with every known secret and secret-shaped string replaced.

        A replacement can make a new match: a secret such as ``]abc123`` spelled anew by a
        placeholder next to the original text, or a token that now follows a ``]`` and so starts
        a word. So the passes repeat until nothing changes (a second pass only runs on text that
        had something to redact). This ends: every change consumes at least one character of the
        original text (placeholder-only secrets are refused); the bound is a safety net.
        """
        if len(text) > _MEMO_TEXT:
            return self._redact_text(text)
        done = self._memo.get(text)
        if done is not None:
            return done
        generation = self._generation
        done = self._redact_text(text)
        with self._lock:
            if generation == self._generation:
                if len(self._memo) >= _MEMO_ENTRIES:
                    self._memo = {}
                self._memo[text] = done
        return done

    def _redact_text(self, text: str) -> str:
        known = self._known()
        for _ in range(_MAX_ROUNDS):
            before = text
            for pattern in known:
                text = pattern.sub(REDACTED, text)
            text = _redact_shapes(text)
            if text == before:
                break
        return text

    def redact_bytes(self, data: bytes | bytearray) -> bytes:
        """Redact bytes of any encoding: decoded with ``surrogateescape``, so non-UTF-8 bytes
        pass through unchanged while UTF-8 (and ASCII) secrets are still found."""
        text = bytes(data).decode("utf-8", "surrogateescape")
        return self.redact_text(text).encode("utf-8", "surrogateescape")

    def redact_json(self, value: Any) -> Any:
        """A redacted copy of a JSON-like value (dicts, lists, tuples, scalars).

        Values under secret-named keys (see :func:`is_sensitive_key`) are replaced whole, whatever
        their type; every other string (keys included) is redacted as text. Non-string keys and
        scalars are kept as they are.
        """
        if isinstance(value, str):
            return self.redact_text(value)
        if isinstance(value, bytes | bytearray):
            return self.redact_bytes(value)
        if isinstance(value, Mapping):
            out: dict[Any, Any] = {}
            for key, item in value.items():
                secret = isinstance(key, str) and is_sensitive_key(key)
                out[self.redact_json(key)] = REDACTED if secret else self.redact_json(item)
            return out
        if isinstance(value, list | tuple):
            items = [self.redact_json(item) for item in value]
            return items if isinstance(value, list) else tuple(items)
        return value

    def redact(self, value: Any) -> Any:
        """Redact a string, bytes or JSON-like value; anything else is returned unchanged."""
        return self.redact_json(value)


def _as_text(value: str | bytes) -> str:
    if isinstance(value, bytes | bytearray):
        return bytes(value).decode("utf-8", "surrogateescape")
    if not isinstance(value, str):
        raise TypeError(f"a secret must be str or bytes, not {type(value).__name__}")
    return value


_DEFAULT = Redactor()


def default_redactor() -> Redactor:
    """The process-wide redactor: register secrets here so every layer's output is covered."""
    return _DEFAULT


def add_secret(value: str | bytes) -> bool:
    """Register a known secret with the process-wide redactor (see :meth:`Redactor.add_secret`)."""
    return _DEFAULT.add_secret(value)


def redact(value: Any) -> Any:
    """Redact with the process-wide redactor (see :meth:`Redactor.redact`)."""
    return _DEFAULT.redact(value)


# --- logging ------------------------------------------------------------------------------------

# Attributes every LogRecord has; anything else came from ``extra=`` and may hold a secret.
_RECORD_ATTRS: Final = frozenset(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {
    "message",
    "asctime",
    "taskName",
}
_MARK: Final = "_alien_redacted"


class RedactingFilter(logging.Filter):
    """Redacts a log record in place before any handler formats it; never drops a record.

    The message and each argument are redacted separately so formatters that need the original
    structure keep working (uvicorn's access formatter unpacks ``record.args``). That is only kept
    when it renders exactly like the redacted full message; otherwise (a secret split between the
    format string and an argument) the record is flattened: ``msg`` becomes the redacted rendered
    message and ``args`` is cleared. Exception and stack text are rendered and redacted into
    ``exc_text``/``stack_info``, and ``exc_info`` is dropped: a handler formatting the live
    traceback itself would bypass redaction. ``extra=`` attributes are redacted too. A record is
    redacted once by each redactor even when it passes several filters (logger and handler): a
    handler's own redactor (knowing secrets the process-wide one does not) still redacts a
    record the process-wide filter let through.
    """

    def __init__(self, redactor: Redactor | None = None) -> None:
        super().__init__()
        self._redactor = redactor

    @property
    def redactor(self) -> Redactor:
        return self._redactor if self._redactor is not None else default_redactor()

    def filter(self, record: logging.LogRecord) -> bool:
        redactor = self.redactor
        done: tuple[Redactor, ...] = getattr(record, _MARK, ())
        if any(seen is redactor for seen in done):
            return True
        _redact_message(record, redactor)
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        record.exc_info = None
        if record.exc_text:
            record.exc_text = redactor.redact_text(record.exc_text)
        if record.stack_info:
            record.stack_info = redactor.redact_text(record.stack_info)
        for name, value in list(record.__dict__.items()):
            if name not in _RECORD_ATTRS and not name.startswith("_"):
                masked = REDACTED if is_sensitive_key(name) else redactor.redact_json(value)
                setattr(record, name, masked)
        setattr(record, _MARK, (*done, redactor))
        return True


def _redact_message(record: logging.LogRecord, redactor: Redactor) -> None:
    rendered = _render(record.msg, record.args)
    if rendered is None:  # a bad format string: keep what there is, readable and redacted
        rendered = f"{record.msg!s} {record.args!r}"
    safe = redactor.redact_text(rendered)
    msg = redactor.redact_text(record.msg) if isinstance(record.msg, str) else record.msg
    args = _redact_args(record.args, redactor)
    if args is not None and _render(msg, args) == safe:
        record.msg, record.args = msg, args
        return
    record.msg, record.args = safe, None
    # uvicorn formats ``color_message`` with ``args``; without them it would print raw ``%s``.
    record.__dict__.pop("color_message", None)


def _redact_arg(value: Any, redactor: Redactor) -> Any:
    if value is None or isinstance(value, bool | int | float):
        return value
    if isinstance(value, str | bytes | bytearray | Mapping | list | tuple):
        return redactor.redact_json(value)
    # Any other object is rendered by its ``__str__`` (an exception, a URL object…): keep it,
    # so ``%r``/``%d`` still work, unless its text holds something to redact.
    text = str(value)
    safe = redactor.redact_text(text)
    return value if safe == text else safe


def _redact_args(args: Any, redactor: Redactor) -> Any:
    if not args:
        return args
    if isinstance(args, Mapping):
        return {key: _redact_arg(value, redactor) for key, value in args.items()}
    if isinstance(args, tuple):
        return tuple(_redact_arg(value, redactor) for value in args)
    return None  # unusual shapes are flattened


def _render(msg: Any, args: Any) -> str | None:
    """``msg % args`` as logging does it; ``None`` when that fails (it must not fail later)."""
    if not args:
        return str(msg)
    try:
        return str(msg) % args
    except Exception:
        return None


def install_logging_redaction(
    redactor: Redactor | None = None, loggers: Iterable[str] = DEFAULT_LOGGERS
) -> RedactingFilter:
    """Put one :class:`RedactingFilter` on each named logger AND on each of its handlers.

    Both, because a logger's filters see only records logged on that very logger, while the
    handlers also receive records propagated from child loggers (``alien.manager`` → root).
    Handlers added later (e.g. by ``logging.config.dictConfig`` or uvicorn's log config) are not
    covered: call this again after configuring logging; it is idempotent. ``redactor=None`` means
    the process-wide one, looked up at each record.
    """
    installed = RedactingFilter(redactor)
    for name in loggers:
        logger = logging.getLogger(name)
        for target in (logger, *logger.handlers):
            if not any(isinstance(f, RedactingFilter) for f in target.filters):
                target.addFilter(installed)
    return installed
