"""The environment of a function process (docs/ARCHITECTURE.md, "Binding environment").

Built from scratch rather than inherited: the platform's own environment may hold credentials
(the agent's deployment token, a vendor's cloud keys) that a function must never see. Only a
short list of harmless variables passes through (so Python, locales and temp files work), then
the function's own ``env`` from the stack, then the ``ALIEN_*`` contract variables, which the
stack cannot override (its validation refuses ``ALIEN_`` names anyway).
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Mapping
from pathlib import Path

from alien.bindings.env import Binding, Bindings
from alien.platforms.local.process import ProcessSpec
from alien.stack.spec import FunctionSpec

PASSTHROUGH = frozenset(
    {
        "PATH",
        "HOME",
        "USER",
        "LOGNAME",
        "LANG",
        "LANGUAGE",
        "TZ",
        "TMPDIR",
        "SYSTEMROOT",
        "VIRTUAL_ENV",
        "PYTHONPATH",
        "COVERAGE_PROCESS_START",
    }
)
RUNTIME_MODULE = "alien.sdk.runtime"


def base_environment(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """The harmless part of the platform's environment that functions inherit."""
    env = os.environ if environ is None else environ
    return {k: v for k, v in env.items() if k in PASSTHROUGH or k.startswith("LC_")}


def function_environment(
    fn: FunctionSpec, bindings: Mapping[str, Binding], *, environ: Mapping[str, str] | None = None
) -> dict[str, str]:
    """Every variable function ``fn`` starts with, but its endpoints' addresses and tokens.

    Those (``ALIEN_HTTP_*``, ``ALIEN_CONTROL_*``) are fresh for every process and added only when
    it is spawned (``process.FunctionProcess``; the tokens through a pipe, not the environment).
    No ``ALIEN_HOST``/``ALIEN_PORT``: a function's app listens where the platform grants, a Unix
    socket in ``run/`` — a loopback port, which every local user could reach, only for an area
    too deep for socket paths (``endpoints``), and guarded by the token there.
    """
    env = base_environment(environ)
    env.update(fn.config.env)
    env.update(
        {
            "ALIEN_FUNCTION": fn.id,
            "ALIEN_ENTRYPOINT": fn.config.code.entrypoint,
            "ALIEN_TRIGGERS": json.dumps(
                [t.model_dump(mode="json") for t in fn.config.triggers], sort_keys=True
            ),
            "ALIEN_COMMANDS_ENABLED": "1" if fn.config.commands_enabled else "0",
            "ALIEN_BINDINGS": Bindings(bindings).dumps(),
            "PYTHONUNBUFFERED": "1",  # log lines reach the log file as they are written
            "PYTHONDONTWRITEBYTECODE": "1",  # keep staged releases exactly as staged
        }
    )
    return env


def process_spec(
    fn: FunctionSpec,
    bindings: Mapping[str, Binding],
    *,
    code_dir: Path,
    log_file: Path,
    run_dir: Path,
    python: str = sys.executable,
) -> ProcessSpec:
    """How to start function ``fn``: the runtime module, run from the function's code dir.

    Each process gets sockets in ``run_dir`` and their tokens (added at spawn time by
    ``FunctionProcess``, see ``endpoints``): its app's, and with commands enabled its control's.
    """
    return ProcessSpec(
        function=fn.id,
        argv=[python, "-m", RUNTIME_MODULE],
        cwd=code_dir,
        env=function_environment(fn, bindings),
        log_file=log_file,
        run_dir=run_dir,
        commands=fn.config.commands_enabled,
    )
