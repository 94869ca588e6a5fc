"""``alien debug <deployment>`` without a command: an interactive shell under a pseudo-terminal
with the session's environment and a prompt marker; leaving the shell ends the session."""

from __future__ import annotations

from pathlib import Path

import pexpect
from dbg_world import World
from debug_moto import ROLE_NAME

TIMEOUT = 60


def test_interactive_shell_has_the_env_and_exit_ends_the_session(
    world: World, tmp_path: Path
) -> None:
    home = tmp_path / "home"
    home.mkdir()
    (home / ".bashrc").write_text("PS1='user-prompt$ '\n")
    env = world.cli_env(SHELL="/bin/bash", HOME=str(home), TERM="dumb")
    argv = world.debug_argv()
    shell = pexpect.spawn(argv[0], argv[1:], env=env, encoding="utf-8", timeout=TIMEOUT)
    try:
        marker = f"(alien-debug {world.ref}) user-prompt$ "
        shell.expect_exact(marker)
        shell.sendline('echo "session=$ALIEN_DEBUG_SESSION endpoint=$AWS_ENDPOINT_URL"')
        shell.expect(r"session=(dbg_\w+) endpoint=(http://127\.0\.0\.1:\d+)")
        session_id = shell.match.group(1)
        shell.expect_exact(marker)
        assert len(world.session_dirs()) == 1
        shell.sendline("aws sts get-caller-identity --query Arn --output text")
        shell.expect(rf"assumed-role/{ROLE_NAME}/alien-debug-{session_id}")
        shell.expect_exact(marker)
        shell.sendline("exit")
        shell.expect(pexpect.EOF)
    finally:
        shell.close(force=True)
    assert shell.exitstatus == 0
    session = world.latest_session()
    assert session["id"] == session_id
    assert session["state"] == "closed" and session["exit_code"] == 0
    assert [r["details"]["operation"] for r in world.requests(session_id)] == ["GetCallerIdentity"]
    assert world.session_dirs() == []
