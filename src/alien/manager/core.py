"""The manager's long-lived parts, opened once per process and shared by every request."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from alien.manager import migrate
from alien.manager.agents import AgentRegistry
from alien.manager.blobs import BlobStore
from alien.manager.db import Database
from alien.manager.events import EventHub, deployment_key
from alien.manager.settings import ManagerSettings


@dataclass
class ManagerCore:
    settings: ManagerSettings
    db: Database
    blobs: BlobStore
    hub: EventHub
    agents: AgentRegistry

    on_stopping: list[Callable[[], None]] = field(default_factory=list)
    """Run on the event loop when the server starts to stop, before it waits for the requests
    still open: long-polls answer now with what they have instead of being cut off."""

    def stopping(self) -> None:
        for hook in self.on_stopping:
            hook()

    def deployments_changed(self, deployment_ids: Iterable[str]) -> None:
        """Wake long-polls and agent channels of these deployments (call after the commit)."""
        self.hub.publish(*(deployment_key(d) for d in deployment_ids))

    def close(self) -> None:
        self.db.dispose()


def open_core(settings: ManagerSettings) -> ManagerCore:
    """Create the data directory, open the database and migrate it to the newest schema."""
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    db = Database(settings.resolved_database_url())
    migrate.upgrade(db.engine)
    return ManagerCore(
        settings=settings,
        db=db,
        blobs=BlobStore(settings.blob_dir),
        hub=EventHub(),
        agents=AgentRegistry(),
    )
