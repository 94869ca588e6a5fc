"""A token with a stray line break or space is refused before any request, never shown.

The HTTP library refused such a header with the whole ``Bearer …`` value in its message, which
the CLIs printed as "cannot reach the manager": the secret in a terminal or a CI log."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from alien.client.config import ClientConfig
from alien.errors import ValidationError

SECRET = "ax_key_3e1c2c65c7e82479_WwwDYv1HAmufAp5lZ1gH6YebXvYIM3yNPKPOhEJvTg8"
GROUP_SECRET = "ax_dg_3e1c2c65c7e82479_WwwDYv1HAmufAp5lZ1gH6YebXvYIM3yNPKPOhEJvTg8"
CLOSED = "http://127.0.0.1:9"


@pytest.mark.parametrize("stray", ["\r", "\n", " ", "\t", "\x00", "é"])
def test_a_token_with_a_character_no_token_has_is_refused(stray: str) -> None:
    with pytest.raises(ValidationError) as err:
        ClientConfig(base_url=CLOSED, token=SECRET + stray)
    assert err.value.field == "token" and SECRET not in err.value.message


@pytest.mark.parametrize(
    ("module", "argv", "env"),
    [
        ("alien.cli.main", ["deployments", "ls"], {"ALIEN_API_KEY": SECRET + "\r"}),
        ("alien.cli.main", ["commands", "ls"], {"ALIEN_TOKEN": SECRET + "\n"}),
        (
            "alien.cli.main",
            ["debug", "acme/prod", "--reason", "r", "--", "true"],
            {"ALIEN_TOKEN": SECRET + "\n"},
        ),
        (
            "alien.cli.deploy",
            ["up", "--name", "x", "--state-dir", "{tmp}/s"],
            {"ALIEN_GROUP_TOKEN": GROUP_SECRET + "\r"},
        ),
    ],
)
def test_the_clis_say_so_in_one_line_without_the_secret(
    module: str, argv: list[str], env: dict[str, str], tmp_path: Path
) -> None:
    """Each in a process of its own, as a user runs it (``alien-deploy up`` sets up the
    process's logging)."""
    argv = [arg.replace("{tmp}", str(tmp_path)) for arg in argv]
    base = {k: v for k, v in os.environ.items() if not k.startswith("ALIEN_")}
    done = subprocess.run(
        [sys.executable, "-m", module, *argv],
        env={**base, "ALIEN_MANAGER_URL": CLOSED, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1, done.stderr
    assert SECRET not in done.stdout + done.stderr and GROUP_SECRET not in done.stderr
    [line] = done.stderr.splitlines()
    assert "the token holds a space, a line break" in line and "cannot reach" not in line
