"""What ``alien debug``'s run path must not import: its set-up is on a clock (0.5 s), and each of
these cost it tens of milliseconds (see ``docs/ARCHITECTURE.md``, "Set-up time").

(click stays: uvicorn, which serves the loopback proxy, imports it from its package root.)"""

from __future__ import annotations

import pytest

from support.imports import imports_module

RUN_PATH = "import sys; sys.argv = ['alien', 'debug']; import alien.cli.main, alien.debug.run"


@pytest.mark.parametrize(
    "module",
    [
        "websockets",  # the tests' WebSocket adapter; the CLI has its own client
        "rich",  # the CLI's consoles are made when first printed to
        "urllib.request",  # the proxy variables are read by tunnel/proxy_connect.py
        "pydantic",  # typer's coercion is replaced (cli/fast_params.py), offers are dataclasses
        "httpx",  # the manager's calls go through client/lite.py
        "botocore",  # its signer loads once the child was spawned
    ],
)
def test_the_run_path_does_not_import(module: str) -> None:
    assert not imports_module(RUN_PATH, module)
