"""Key validation: refused, or provably inside the bucket — for any text at all."""

from __future__ import annotations

import os
from pathlib import PurePosixPath

import pytest
from hypothesis import example, given
from key_strategies import path_text

from alien.bindings.keys import MAX_KEY_BYTES, key_path, key_segments, validate_key
from alien.errors import InvalidKey

ROOT = PurePosixPath("/srv/bucket")


@given(path_text)
@example("../etc/passwd")
@example("a/../../b")
@example("/abs")
@example("a/./b")
@example("\x00")
@example("é" * 600)
def test_any_text_is_refused_or_stays_inside(key: str) -> None:
    try:
        path = key_path(ROOT, key)
    except InvalidKey as err:
        assert err.field == "key"
        assert err.code == "INVALID_KEY"
        assert "invalid key" in err.message
        return
    resolved = PurePosixPath(os.path.normpath(path))
    assert resolved == path, "normalisation changed the path: two keys could alias one file"
    assert resolved.is_relative_to(ROOT) and resolved != ROOT
    assert "/".join(resolved.relative_to(ROOT).parts) == key  # the mapping is one-to-one
    assert len(key.encode()) <= MAX_KEY_BYTES


@pytest.mark.parametrize(
    ("key", "why"),
    [
        ("", "empty"),
        ("/a", "leading '/'"),
        ("a/../b", "'..' segment"),
        ("..", "'..' segment"),
        ("./a", "'.' segment"),
        ("a//b", "empty segment"),
        ("a/", "trailing '/'"),
        ("a\\b", "backslash"),
        ("a\x00b", "U+0000"),
        ("a\x7fb", "U+007F"),
        ("a\x85b", "U+0085"),
        ("a\tb", "U+0009"),
        ("\ud800", "lone surrogate"),
        ("x" * 1025, "1025 bytes"),
        ("é" * 513, "1026 bytes"),
        ("a/" + "b" * 256, "longer than 255"),
    ],
)
def test_refusals_say_why(key: str, why: str) -> None:
    with pytest.raises(InvalidKey) as err:
        validate_key(key)
    assert why in err.value.message
    assert len(err.value.message) < 200  # long keys are abbreviated in the message


def test_non_strings_refused() -> None:
    for key in (None, 5, b"bytes", ["a"]):
        with pytest.raises(InvalidKey, match="must be a string"):
            validate_key(key)


def test_accepted_keys() -> None:
    for key in ["a", "a/b/c.txt", "日本/語", "x" * 255, "a/" * 300 + "b", ".hidden", "a..b", "~"]:
        assert validate_key(key) == key
    assert key_segments("a/b") == ("a", "b")
    assert key_path(ROOT, "a/b") == ROOT / "a" / "b"
