"""The command control endpoint's server: started beside the app, stopped gracefully with it.

Serves :func:`alien.sdk.runtime.control_app.control_app` on the address the platform chose
(``ALIEN_CONTROL_ADDRESS``), separately from the app's public port so the app's users can never
reach it. Stopping it stops accepting connections and waits for the invocations in flight: a
command running when the function is told to stop (an update replacing this version) finishes
and answers, within the platform's grace period.
"""

from __future__ import annotations

import logging

from alien.sdk.runtime.config import EndpointConfig
from alien.sdk.runtime.control_app import Offload, RunningCommands, control_app
from alien.sdk.runtime.http import HttpServer

log = logging.getLogger("alien.runtime.control")


class ControlServer:
    """The control endpoint of one function process."""

    def __init__(
        self, function: str, config: EndpointConfig, *, offload: Offload | None = None
    ) -> None:
        self.function = function
        self.running = RunningCommands()
        app = control_app(function, config.token, offload=offload, running=self.running)
        self._server = HttpServer(
            app, config.address, variable="ALIEN_CONTROL_ADDRESS", internal=True
        )

    @property
    def address(self) -> str:
        """Where it listens, as the ready line reports it (``unix:<path>``/``tcp:<ip>:<port>``)."""
        return str(self._server.address)

    async def start(self) -> str:
        await self._server.start()
        return self.address

    async def stop(self) -> None:
        """Stop accepting; return once every invocation in flight has answered."""
        if in_flight := self.running.ids():
            log.info("waiting for %d running command(s) to finish", len(in_flight))
        await self._server.stop()
