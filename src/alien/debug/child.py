"""Running the debugged command (or an interactive shell) and stopping it when it must stop.

The child runs in ``alien debug``'s process group, so Ctrl-C at the terminal reaches it directly
(an interactive shell takes the terminal's foreground itself). It is stopped on our behalf when
the session ends under it or ``alien debug`` is interrupted: first given a moment to exit on its
own (it has just seen its requests refused, or the terminal's own SIGINT), then asked politely
(SIGINT for an interrupt, SIGTERM — or SIGHUP for an interactive shell, which ignores SIGTERM),
then killed.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from alien.debug.session_dir import SessionDir
from alien.errors import AlienError

GRACE_SECONDS = 1.0
TERMINATE_SECONDS = 3.0


class CommandNotRunnable(AlienError):
    """The command to debug could not be started (not found, not executable)."""

    code = "COMMAND_NOT_RUNNABLE"
    status = 422


def exit_status(returncode: int) -> int:
    """A shell-style exit status: a child killed by signal N exits ``128 + N``."""
    return 128 - returncode if returncode < 0 else returncode


@dataclass(frozen=True)
class ChildCommand:
    argv: list[str]
    env: dict[str, str]
    interactive: bool


def shell_command(files: SessionDir, label: str, env: Mapping[str, str]) -> tuple[list[str], dict]:
    """An interactive ``$SHELL`` (default ``/bin/bash``) whose prompt starts with a marker.

    bash gets an rc file in the session directory that sources the user's ``~/.bashrc`` and
    then prefixes ``PS1``; other shells get ``PS1`` in their environment.
    """
    shell = env.get("SHELL") or "/bin/bash"
    marker = f"(alien-debug {label})"
    if os.path.basename(shell) == "bash":
        rc = files.write_text(
            "bashrc",
            f'[ -f "$HOME/.bashrc" ] && . "$HOME/.bashrc"\nPS1="{marker} ${{PS1:-\\$ }}"\n',
        )
        return [shell, "--rcfile", str(rc), "-i"], {}
    return [shell, "-i"], {"PS1": f"{marker} $ "}


class Child:
    """A started child process with the stop sequence described above."""

    def __init__(self, process: asyncio.subprocess.Process, interactive: bool) -> None:
        self.process = process
        self.interactive = interactive

    @classmethod
    async def start(cls, command: ChildCommand) -> Child:
        try:
            process = await asyncio.create_subprocess_exec(*command.argv, env=command.env)
        except OSError as exc:
            raise CommandNotRunnable(
                f"cannot run {command.argv[0]!r}: {exc.strerror or exc}", field="command"
            ) from None
        return cls(process, command.interactive)

    @property
    def pid(self) -> int:
        return self.process.pid

    async def wait(self) -> int:
        return exit_status(await self.process.wait())

    def _signal(self, signum: int) -> None:
        if self.process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.process.send_signal(signum)

    async def _exited_within(self, seconds: float) -> bool:
        try:
            async with asyncio.timeout(seconds):
                await asyncio.shield(self.process.wait())
        except TimeoutError:
            return False
        return True

    async def stop(self, *, interrupt: bool = False, grace: float = GRACE_SECONDS) -> int:
        """Stop the child (see the module doc); returns its exit status."""
        if not await self._exited_within(grace):
            polite: Sequence[int] = (signal.SIGINT,) if interrupt and not self.interactive else ()
            polite = (*polite, signal.SIGHUP if self.interactive else signal.SIGTERM)
            for signum in polite:
                self._signal(signum)
                if await self._exited_within(TERMINATE_SECONDS):
                    break
            else:
                self._signal(signal.SIGKILL)
        return await self.wait()
