"""The manager app served by uvicorn on a thread of this process, for tests that must reach its
command center (register a push dispatcher, run writer operations side by side)."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Coroutine
from pathlib import Path
from typing import Any, TypeVar

import uvicorn

from alien.manager import tokens
from alien.manager.app import create_app
from alien.manager.commands.center import CommandCenter
from alien.manager.commands.dispatch import DirectDispatcher
from alien.manager.server import bind, url_of
from alien.manager.settings import ManagerSettings

T = TypeVar("T")


class InProcessManager:
    """The manager app served by uvicorn on a thread of this process (SQLite)."""

    def __init__(self, data_dir: Path) -> None:
        self.admin_key = tokens.issue(tokens.TokenKind.API_KEY).value
        self.data_dir = data_dir
        self.app = create_app(ManagerSettings(data_dir=data_dir, admin_key=self.admin_key))
        self.center: CommandCenter = self.app.state.commands
        sock = bind("127.0.0.1", 0)
        self.url = url_of(sock)
        self.ws_url = "ws" + self.url.removeprefix("http")
        config = uvicorn.Config(self.app, log_level="warning", lifespan="on")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [sock]})

    def __enter__(self) -> InProcessManager:
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            assert time.monotonic() < deadline, "the in-process manager did not start"
            time.sleep(0.01)
        return self

    def call(self, coroutine: Coroutine[Any, Any, T]) -> T:
        """Run ``coroutine`` on the manager's event loop and wait for its result."""
        return asyncio.run_coroutine_threadsafe(coroutine, self.center.loop).result(timeout=10)

    def register(self, deployment_id: str, dispatcher: DirectDispatcher) -> int:
        """Register ``dispatcher`` on the manager's loop; the number of commands it was handed."""
        return self.call(self.center.register_dispatcher(deployment_id, dispatcher))

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=20)
