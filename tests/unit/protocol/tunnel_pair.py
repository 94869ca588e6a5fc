"""Two tunnel connections wired back to back, for tests: bytes move only when ``pump`` says."""

from __future__ import annotations

from dataclasses import dataclass, field

from alien.protocol.frames import Settings
from alien.protocol.tunnel import Connection
from alien.protocol.tunnel_events import Event


@dataclass
class Pair:
    client: Connection = field(default_factory=lambda: Connection("client"))
    server: Connection = field(default_factory=lambda: Connection("server"))
    client_events: list[Event] = field(default_factory=list)
    server_events: list[Event] = field(default_factory=list)

    @classmethod
    def with_settings(cls, settings: Settings) -> Pair:
        return cls(Connection("client", settings=settings), Connection("server", settings=settings))

    def pump(self, rounds: int = 100) -> None:
        """Deliver queued bytes both ways until both sides are quiet."""
        for _ in range(rounds):
            to_server, to_client = self.client.data_to_send(), self.server.data_to_send()
            if not to_server and not to_client:
                return
            if to_server:
                self.server_events += self.server.receive_data(to_server)
            if to_client:
                self.client_events += self.client.receive_data(to_client)
        raise AssertionError("connections never went quiet")

    def take(self) -> tuple[list[Event], list[Event]]:
        """Events seen since the last take: (client's, server's)."""
        events = (self.client_events, self.server_events)
        self.client_events, self.server_events = [], []
        return events


def handshaken(settings: Settings | None = None) -> Pair:
    pair = Pair.with_settings(settings) if settings else Pair()
    pair.pump()
    pair.take()
    return pair
