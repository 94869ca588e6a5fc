"""What ``LocalPlatform.apply`` / ``status`` report: resources, functions, warnings.

Plain data with ``to_dict`` so the agent can send it to the manager as JSON and ``alien dev``
can print it; nothing here holds a secret (binding paths are not included).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal

Health = Literal["ok", "missing", "retained"]


@dataclass(frozen=True)
class ResourceStatus:
    """One provisioned resource.

    ``health``: ``ok``; ``missing`` (files that should exist do not; FROZEN resources are not
    recreated, so this needs an operator); ``retained`` (a FROZEN resource no longer in the
    stack: kept, never deleted by an update).
    """

    id: str
    kind: str
    lifecycle: str
    health: Health = "ok"
    detail: str | None = None


@dataclass(frozen=True)
class FunctionStatus:
    id: str
    state: str
    release: str
    pid: int | None
    url: str | None
    """The public ingress URL (stable); ``None`` for private functions."""
    restarts: int = 0
    last_exit: int | None = None
    last_error: str | None = None
    control: str | None = None
    """The current process's command control address (``unix:…``), never its token; ``None``
    without commands or while restarting."""


@dataclass(frozen=True)
class Status:
    stack: str | None
    release: str | None
    resources: list[ResourceStatus] = field(default_factory=list)
    functions: list[FunctionStatus] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def urls(self) -> dict[str, str]:
        """Public function id → its ingress URL."""
        return {f.id: f.url for f in self.functions if f.url}

    @property
    def healthy(self) -> bool:
        return all(r.health != "missing" for r in self.resources) and all(
            f.state == "running" for f in self.functions
        )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self) | {"healthy": self.healthy}
