"""Property tests: a registered secret never survives, wherever it is embedded."""

from __future__ import annotations

import json

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from alien.redaction import MIN_SECRET_LENGTH, REDACTED, Redactor

SETTINGS = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# Secrets of any characters, biased towards the ones that interact with the placeholder and the
# patterns ("[", "]", "=", quotes, letters of REDACTED, newlines).
_TRICKY = [*"[]RDACTE=:\"'\\/ \n%&", "[REDACTED]", "password=", "ax_key_", "://"]
secret_text = st.lists(st.sampled_from(_TRICKY) | st.characters(), min_size=1, max_size=30).map(
    "".join
).filter(lambda s: len(s) >= MIN_SECRET_LENGTH) | st.text(min_size=MIN_SECRET_LENGTH, max_size=40)
filler = st.text(max_size=60) | st.lists(st.sampled_from(_TRICKY), max_size=10).map("".join)


def registered(secrets: list[str]) -> tuple[Redactor, list[str]]:
    """A redactor knowing ``secrets``, and those it accepted: values made only of placeholder
    text (``[REDACTED]``, ``ED][RE``) are refused, since no replacement could remove them."""
    redactor = Redactor()
    return redactor, [secret for secret in secrets if redactor.add_secret(secret)]


@st.composite
def embedded(draw: st.DrawFn) -> tuple[list[str], str]:
    """One to three secrets, and a text with them embedded anywhere, any number of times."""
    secrets = draw(st.lists(secret_text, min_size=1, max_size=3, unique=True))
    parts = draw(st.lists(filler | st.sampled_from(secrets), min_size=1, max_size=12))
    at = draw(st.integers(0, len(parts)))
    parts.insert(at, draw(st.sampled_from(secrets)))  # at least one occurrence
    return secrets, "".join(parts)


@SETTINGS
@given(embedded())
def test_registered_secrets_never_survive_in_text(case: tuple[list[str], str]) -> None:
    redactor, secrets = registered(case[0])
    text = case[1]

    out = redactor.redact_text(text)

    for secret in secrets:
        assert secret not in out


@SETTINGS
@given(embedded(), st.binary(max_size=20), st.binary(max_size=20))
def test_registered_secrets_never_survive_in_bytes(
    case: tuple[list[str], str], before: bytes, after: bytes
) -> None:
    redactor, secrets = registered(case[0])
    text = case[1]
    try:
        data = before + text.encode("utf-8") + after
    except UnicodeEncodeError:  # lone surrogates cannot be in UTF-8 bytes
        return

    out = redactor.redact_bytes(data)

    for secret in secrets:
        assert secret.encode("utf-8", "surrogatepass") not in out


@SETTINGS
@given(embedded(), st.sampled_from(["value", "key", "deep", "dumped"]))
def test_registered_secrets_never_survive_in_json(case: tuple[list[str], str], where: str) -> None:
    redactor, secrets = registered(case[0])
    text = case[1]
    value = {
        "value": {"plain": text},
        "key": {text: 1},
        "deep": {"a": [{"b": [text, 1, None]}]},
        "dumped": {"log": json.dumps({"body": text})},
    }[where]

    out = redactor.redact_json(value)

    # Each string is checked on its own, keys included: the serialized document is not, since a
    # secret such as ``"[REDACTED]`` is spelled there by a JSON quote next to a placeholder,
    # which reveals nothing. A string holding JSON ("dumped") must not hold an escaped spelling.
    for string in _strings(out):
        for secret in secrets:
            for spelled in (
                secret,
                json.dumps(secret)[1:-1],
                json.dumps(secret, ensure_ascii=False)[1:-1],
            ):
                if len(spelled) >= MIN_SECRET_LENGTH:
                    assert spelled not in string


def _strings(value: object) -> list[str]:
    """Every string in a JSON-like value, keys included."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for key, item in value.items() for s in _strings(key) + _strings(item)]
    if isinstance(value, list | tuple):
        return [s for item in value for s in _strings(item)]
    return []


# Text made of pieces of the patterns, to shake out interactions between them.
_PIECES = [
    "password=",
    "token: ",
    "Authorization: Bearer ",
    "ax_key_0123456789abcdef_",
    "ax_dep_",
    "AKIAIOSFODNN7EXAMPLE",
    "eyJhbGciOi.eyJzdWIiOi.sig",
    "https://u:p@h/",
    "-----BEGIN PRIVATE KEY-----",
    "-----END PRIVATE KEY-----",
    '"secret": ',
    "'api_key': ",
    '\\"',
    '"',
    "'",
    " ",
    "\n",
    "&",
    "=",
    ":",
    "[REDACTED]",
    "abcdefghijklmnopqrstuvwxyz",
    "0123456789",
    "{",
    "}",
    "[",
    "]",
    "Signature=",
    "X-Amz-Security-Token=",
]


@SETTINGS
@given(st.lists(st.sampled_from(_PIECES) | st.text(max_size=5), max_size=25).map("".join))
def test_redaction_is_idempotent(text: str) -> None:
    redactor = Redactor(["registered-secret"])
    once = redactor.redact_text(text)

    assert redactor.redact_text(once) == once


@SETTINGS
@given(st.lists(st.sampled_from(_PIECES), max_size=25).map("".join))
def test_a_mask_never_grows_into_a_secret_shape_that_leaks(text: str) -> None:
    # Whatever the patterns do, a token's secret part never comes out.
    secret_part = "Zm9vYmFyYmF6cXV4cXV1eHh5enp5eDEyMzQ1Njc4OTAx"
    out = Redactor().redact_text(text + f" ax_key_0123456789abcdef_{secret_part}")

    assert secret_part not in out
    assert REDACTED in out
