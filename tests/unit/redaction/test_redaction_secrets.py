"""Known secrets registered at runtime: found in any spelling, in text, bytes and JSON."""

from __future__ import annotations

import json
import secrets
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import quote, quote_plus

import pytest

import alien.redaction as redaction
from alien.redaction import MIN_SECRET_LENGTH, REDACTED, Redactor, default_redactor

R = REDACTED
CANARY = "canary-7f3e9b2c41d8"


@pytest.fixture
def redactor() -> Redactor:
    return Redactor([CANARY])


def test_a_known_secret_is_replaced_wherever_it_occurs(redactor: Redactor) -> None:
    text = f"{CANARY} at the start, mid{CANARY}word, and at the end {CANARY}"

    assert redactor.redact_text(text) == f"{R} at the start, mid{R}word, and at the end {R}"


def test_short_values_are_not_registered() -> None:
    redactor = Redactor()

    assert not redactor.add_secret("x" * (MIN_SECRET_LENGTH - 1))
    assert not redactor.add_secret("true")
    assert len(redactor) == 0
    # otherwise every ordinary "true" would be masked, and the masks would reveal the value
    assert redactor.redact_text("enabled: true") == "enabled: true"


def test_registering_twice_is_harmless(redactor: Redactor) -> None:
    assert not redactor.add_secret(CANARY)
    assert redactor.add_secret(b"bytes-secret-123")
    assert len(redactor) == 2
    assert redactor.redact_text("bytes-secret-123") == R


@pytest.mark.parametrize(
    "spell",
    [
        lambda s: s,
        lambda s: json.dumps(s)[1:-1],
        lambda s: json.dumps(s, ensure_ascii=False)[1:-1],
        quote,
        lambda s: quote(s, safe=""),
        quote_plus,
    ],
    ids=["plain", "json", "json-unicode", "url-path", "url", "url-plus"],
)
def test_escaped_spellings_are_found_too(spell: object) -> None:
    secret = 'pä$$ "wörd"/&=\\ 1'
    redactor = Redactor([secret])
    spelled = spell(secret)  # type: ignore[operator]

    out = redactor.redact_text(f"<{spelled}>")

    assert out == f"<{R}>"


def test_each_line_of_a_multi_line_secret_is_found() -> None:
    key = "first-line-AAAA\nsecond-line-BBBB\nend"
    redactor = Redactor([key])

    assert redactor.redact_text("log: second-line-BBBB") == f"log: {R}"
    assert redactor.redact_text(key) == R
    assert redactor.redact_text("end") == "end"  # too short on its own


def test_the_longest_of_overlapping_secrets_wins() -> None:
    redactor = Redactor(["abcdef", "abcdefghij", "zzabcd"])

    assert redactor.redact_text("xabcdefghijx") == f"x{R}x"
    assert redactor.redact_text("xabcdefgx") == f"x{R}gx"
    assert redactor.redact_text("zzabcdef") == f"{R}ef"


def test_a_secret_that_the_placeholder_could_spell_again_is_still_removed() -> None:
    # "]abcdef" after redacting "]abcdef" from "]abcdefabcdef" leaves "[REDACTED]abcdef" —
    # which contains "]abcdef" again; the redactor goes on until none is left.
    for secret in ["]abcdef", "abcdef[RE", "xx[REDACTED]yy", "D]abcdefg"]:
        redactor = Redactor([secret])
        text = f"{secret}abcdef {secret}{secret} [{secret}"

        out = redactor.redact_text(text)

        assert secret not in out


def test_secrets_nested_too_deep_for_a_trie_still_work() -> None:
    # Each one a prefix of the next: the trie would nest 1,000 groups; a flat pattern is used.
    redactor = Redactor(["s" * n for n in range(MIN_SECRET_LENGTH, 1050)])

    assert redactor.redact_text("<" + "s" * 1020 + ">") == f"<{R}>"


def test_secrets_can_be_forgotten(redactor: Redactor) -> None:
    redactor.add_secret("second-secret-xyz")

    assert redactor.discard_secret(CANARY)
    assert not redactor.discard_secret(CANARY)
    assert redactor.redact_text(f"{CANARY} second-secret-xyz") == f"{CANARY} {R}"
    redactor.clear()
    assert redactor.redact_text("second-secret-xyz") == "second-secret-xyz"
    assert redactor.redact_text("password=x") == f"password={R}"  # patterns still apply


def test_a_spelling_shared_by_two_secrets_stays_until_both_are_gone() -> None:
    redactor = Redactor(["line-one-secret\nline-two-secret", "line-one-secret"])

    redactor.discard_secret("line-one-secret")

    assert redactor.redact_text("line-one-secret") == R


def test_bytes_keep_every_byte_that_is_not_secret(redactor: Redactor) -> None:
    data = b"\xff\xfe binary \x00\x80 " + CANARY.encode() + b" \xc3\x28 tail \xe2"

    out = redactor.redact_bytes(data)

    assert out == b"\xff\xfe binary \x00\x80 " + R.encode() + b" \xc3\x28 tail \xe2"
    assert redactor.redact_bytes(bytearray(data)) == out
    assert redactor.redact(data) == out


def test_json_values_are_redacted_deeply(redactor: Redactor) -> None:
    value = {
        "user": "bob",
        "password": {"nested": "whatever"},
        "headers": [("Authorization", f"Bearer {CANARY}"), {"X-Api-Key": 1234567}],
        CANARY: "a secret used as a key",
        "note": f"see {CANARY}",
        "count": 3,
        "ratio": 0.5,
        "ok": True,
        "none": None,
        7: "non-string keys are kept",
        "raw": CANARY.encode(),
    }

    out = redactor.redact_json(value)

    assert out == {
        "user": "bob",
        "password": R,
        "headers": [("Authorization", f"Bearer {R}"), {"X-Api-Key": R}],
        R: "a secret used as a key",
        "note": f"see {R}",
        "count": 3,
        "ratio": 0.5,
        "ok": True,
        "none": None,
        7: "non-string keys are kept",
        "raw": R.encode(),
    }
    assert redactor.redact(value) == out
    assert value["note"] == f"see {CANARY}"  # the input is not modified


def test_other_objects_pass_through(redactor: Redactor) -> None:
    marker = object()

    assert redactor.redact(marker) is marker
    assert redactor.redact(42) == 42


def test_reprs_never_show_secrets(redactor: Redactor) -> None:
    assert CANARY not in repr(redactor)
    assert "1 secrets" in repr(redactor)


def test_only_str_and_bytes_can_be_secrets() -> None:
    with pytest.raises(TypeError):
        Redactor().add_secret(12345678)  # type: ignore[arg-type]


@pytest.fixture
def registered() -> Iterator[str]:
    value = f"process-wide-{secrets.token_hex(8)}"
    yield value
    default_redactor().discard_secret(value)


def test_the_process_wide_redactor_is_shared(registered: str) -> None:
    isolated = Redactor()

    assert redaction.add_secret(registered)

    assert redaction.redact(f"x {registered}") == f"x {R}"
    assert default_redactor().redact_text(registered) == R
    assert isolated.redact_text(registered) == registered


def test_registering_from_many_threads_while_redacting_loses_nothing() -> None:
    redactor = Redactor()
    values = [f"threaded-secret-{n:04d}" for n in range(200)]
    text = " ".join(values)

    def register(value: str) -> str:
        redactor.add_secret(value)
        return redactor.redact_text(text)

    with ThreadPoolExecutor(max_workers=8) as pool:
        partial = list(pool.map(register, values))

    assert all(value not in partial[i] for i, value in enumerate(values))
    assert redactor.redact_text(text) == " ".join([R] * len(values))


def test_a_remembered_short_text_is_redacted_once_its_secret_is_registered() -> None:
    redactor = Redactor()
    value = "short-value-42"
    assert redactor.redact_text(value) == value  # remembered as it is
    assert redactor.redact_text(value) == value
    redactor.add_secret(value)
    assert redactor.redact_text(value) == R
    redactor.discard_secret(value)
    assert redactor.redact_text(value) == value
    redactor.add_secret(value)
    assert redactor.redact_text(f"k={value}") == f"k={R}"
    redactor.clear()
    assert redactor.redact_text(value) == value


def test_short_texts_registered_from_many_threads_are_never_served_stale() -> None:
    redactor = Redactor()
    values = [f"short-{n:04d}-secret" for n in range(300)]

    def register(value: str) -> str:
        assert redactor.redact_text(value) == value  # remembered before it is a secret
        redactor.add_secret(value)
        return redactor.redact_text(value)

    with ThreadPoolExecutor(max_workers=8) as pool:
        assert list(pool.map(register, values)) == [R] * len(values)
    assert [redactor.redact_text(value) for value in values] == [R] * len(values)


def test_a_redaction_started_during_compilation_does_not_deadlock(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Compiling the patterns allocates; the garbage collector may then run a finalizer that
    logs (an asyncio task destroyed with an exception), whose line is redacted on the same
    thread. With a plain lock that thread waited for itself forever (seen in the manager)."""
    redactor = Redactor([CANARY])  # patterns not compiled yet
    nested: list[str] = []
    compile_trie = redaction._trie_regex

    def finalizer_logs(values: Iterator[str]) -> str:
        if not nested:  # a finalizer runs once
            nested.append("running")
            nested[0] = redactor.redact_text(f"a finalizer says {CANARY}")
        return compile_trie(values)

    monkeypatch.setattr(redaction, "_trie_regex", finalizer_logs)
    worker = threading.Thread(
        target=redactor.redact_text, args=(f"the first redaction compiles {CANARY}",), daemon=True
    )
    worker.start()
    worker.join(10)
    assert not worker.is_alive(), "the redactor deadlocked"
    assert nested == [f"a finalizer says {R}"]
