"""The runtime reads its tokens from the inherited pipe once, and leaves nothing behind."""

from __future__ import annotations

import os

import pytest

from alien.errors import ValidationError
from alien.sdk.runtime.secrets_fd import read_secrets


def _pipe(data: bytes) -> int:
    read_end, write_end = os.pipe()
    os.write(write_end, data)
    os.close(write_end)
    return read_end


def test_the_secrets_are_read_and_the_pipe_and_variable_are_gone() -> None:
    fd = _pipe(b'{"ALIEN_HTTP_TOKEN": "t1", "ALIEN_CONTROL_TOKEN": "t2"}')
    environ = {"ALIEN_SECRETS_FD": str(fd), "PATH": "/bin"}
    assert read_secrets(environ) == {"ALIEN_HTTP_TOKEN": "t1", "ALIEN_CONTROL_TOKEN": "t2"}
    assert environ == {"PATH": "/bin"}
    with pytest.raises(OSError):
        os.fstat(fd)


def test_no_variable_means_no_secrets() -> None:
    assert read_secrets({"PATH": "/bin"}) == {}


@pytest.mark.parametrize("data", [b"not json", b'["x"]', b'{"ALIEN_HTTP_TOKEN": 1}'])
def test_a_malformed_pipe_is_refused_without_echoing_it(data: bytes) -> None:
    fd = _pipe(data)
    with pytest.raises(ValidationError) as info:
        read_secrets({"ALIEN_SECRETS_FD": str(fd)})
    assert info.value.field == "ALIEN_SECRETS_FD" and "not json" not in info.value.message


@pytest.mark.parametrize("raw", ["x", "99999"])
def test_an_unreadable_descriptor_is_refused(raw: str) -> None:
    with pytest.raises(ValidationError, match="not a readable file descriptor"):
        read_secrets({"ALIEN_SECRETS_FD": raw})
