"""A token with a stray line break or space is refused before any request, never shown.

The HTTP library refused such a header with the whole ``Bearer …`` value in its message, which
the CLIs printed as "cannot reach the manager": the secret in a terminal or a CI log."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from alien.cli.deploy import app as deploy_cli
from alien.cli.main import app as alien_cli
from alien.client.config import ClientConfig
from alien.errors import ValidationError

SECRET = "ax_key_3e1c2c65c7e82479_WwwDYv1HAmufAp5lZ1gH6YebXvYIM3yNPKPOhEJvTg8"
CLOSED = "http://127.0.0.1:9"


@pytest.mark.parametrize("stray", ["\r", "\n", " ", "\t", "\x00", "é"])
def test_a_token_with_a_character_no_token_has_is_refused(stray: str) -> None:
    with pytest.raises(ValidationError) as err:
        ClientConfig(base_url=CLOSED, token=SECRET + stray)
    assert err.value.field == "token" and SECRET not in err.value.message


@pytest.mark.parametrize(
    ("cli", "argv", "env"),
    [
        (alien_cli, ["deployments", "ls"], {"ALIEN_API_KEY": SECRET + "\r"}),
        (alien_cli, ["commands", "ls"], {"ALIEN_TOKEN": SECRET + "\n"}),
        (
            alien_cli,
            ["debug", "acme/prod", "--reason", "r", "--", "true"],
            {"ALIEN_TOKEN": SECRET + "\n"},
        ),
        (
            deploy_cli,
            ["up", "--name", "x", "--state-dir", "{tmp}/s"],
            {"ALIEN_GROUP_TOKEN": SECRET + "\r"},
        ),
    ],
)
def test_the_clis_say_so_in_one_line_without_the_secret(
    cli: object, argv: list[str], env: dict[str, str], tmp_path: object
) -> None:
    argv = [arg.replace("{tmp}", str(tmp_path)) for arg in argv]
    base = {"ALIEN_MANAGER_URL": CLOSED, "ALIEN_TOKEN": None, "ALIEN_API_KEY": None}
    result = CliRunner().invoke(cli, argv, env={**base, **env})  # type: ignore[arg-type]
    assert result.exit_code == 1, result.output
    assert SECRET not in result.output
    [line] = result.stderr.splitlines()
    assert "the token holds a space, a line break" in line and "cannot reach" not in line
