"""The runtime's configuration, read from the environment the platform sets (ARCHITECTURE.md).

Everything is validated before any app code is imported, so a platform bug shows up as one clear
line naming the variable, not as a traceback from deep inside a trigger loop. The trigger models
here are the runtime's reading of the manifest's ``triggers`` entries; extra keys are ignored so
a newer platform can add fields without breaking an older runtime.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter
from pydantic import ValidationError as PydanticValidationError

from alien.errors import ValidationError
from alien.sdk.runtime.address import ListenAddress, parse_listen_address

MIN_TOKEN_CHARS = 32
"""A token shorter than this is refused: on a loopback port it is the only thing guarding the
endpoint."""

_TOKEN_CHARS = re.compile(r"[\x21-\x7e]+")
"""Visible ASCII only: the token travels in an HTTP header."""

_MODEL = ConfigDict(frozen=True, extra="ignore")


class QueueTrigger(BaseModel):
    model_config = _MODEL
    type: Literal["queue"]
    queue: str = Field(min_length=1)

    @property
    def label(self) -> str:
        return f"queue:{self.queue}"


class StorageTrigger(BaseModel):
    model_config = _MODEL
    type: Literal["storage"]
    storage: str = Field(min_length=1)
    events: frozenset[Literal["put", "delete"]] = frozenset({"put", "delete"})

    @property
    def label(self) -> str:
        return f"storage:{self.storage}"


class CronTrigger(BaseModel):
    model_config = _MODEL
    type: Literal["cron"]
    name: str = Field(min_length=1)
    schedule: str = Field(min_length=1)

    @property
    def label(self) -> str:
        return f"cron:{self.name}"


Trigger = Annotated[QueueTrigger | StorageTrigger | CronTrigger, Field(discriminator="type")]
_TRIGGERS = TypeAdapter(tuple[Trigger, ...])


@dataclass(frozen=True)
class EndpointConfig:
    """Where one of the platform's endpoints listens and the secret its callers must present.

    ``token`` is kept out of ``repr`` so no log line or traceback that shows the config shows it.
    """

    address: ListenAddress
    token: str = field(repr=False)


@dataclass(frozen=True)
class RuntimeConfig:
    """What one function process runs: which code, which triggers, where to serve HTTP."""

    function: str
    entrypoint: str
    triggers: tuple[Trigger, ...]
    host: str
    port: int
    commands_enabled: bool
    code_dir: Path
    http: EndpointConfig | None = None
    """Where the app is served for the platform alone (``ALIEN_HTTP_ADDRESS``, its callers
    presenting ``ALIEN_HTTP_TOKEN``); ``host``/``port`` are not used then."""
    control: EndpointConfig | None = None
    """The command control endpoint, when commands are enabled and the platform delivers them
    through it (``ALIEN_CONTROL_ADDRESS`` set); other platforms may invoke handlers otherwise."""

    @classmethod
    def from_environ(cls, environ: Mapping[str, str] | None = None) -> RuntimeConfig:
        env = os.environ if environ is None else environ
        commands_enabled = env.get("ALIEN_COMMANDS_ENABLED", "0") == "1"
        return cls(
            function=_required(env, "ALIEN_FUNCTION"),
            entrypoint=_entrypoint(_required(env, "ALIEN_ENTRYPOINT")),
            triggers=_triggers(env.get("ALIEN_TRIGGERS", "")),
            host=env.get("ALIEN_HOST") or "127.0.0.1",
            port=_port(env.get("ALIEN_PORT") or "0"),
            commands_enabled=commands_enabled,
            code_dir=Path.cwd(),
            http=_endpoint(env, "ALIEN_HTTP") if "ALIEN_HTTP_ADDRESS" in env else None,
            control=(
                _endpoint(env, "ALIEN_CONTROL")
                if commands_enabled and "ALIEN_CONTROL_ADDRESS" in env
                else None
            ),
        )


def _required(env: Mapping[str, str], name: str) -> str:
    value = env.get(name, "").strip()
    if not value:
        raise ValidationError(f"{name} is not set: the platform must set it", field=name)
    return value


def _endpoint(env: Mapping[str, str], prefix: str) -> EndpointConfig:
    """``<prefix>_ADDRESS`` and ``<prefix>_TOKEN``: an endpoint the platform granted."""
    address = parse_listen_address(_required(env, f"{prefix}_ADDRESS"), f"{prefix}_ADDRESS")
    name = f"{prefix}_TOKEN"
    token = _required(env, name)
    if len(token) < MIN_TOKEN_CHARS or not _TOKEN_CHARS.fullmatch(token):
        # Never echo the value: even a malformed token is a secret someone meant to keep.
        raise ValidationError(
            f"{name} must be at least {MIN_TOKEN_CHARS} printable ASCII characters", field=name
        )
    return EndpointConfig(address=address, token=token)


def _entrypoint(value: str) -> str:
    module, sep, attribute = value.partition(":")
    if not sep or not module or not attribute:
        raise ValidationError(
            f"ALIEN_ENTRYPOINT {value!r} must be 'module:attribute'", field="ALIEN_ENTRYPOINT"
        )
    return value


def _port(value: str) -> int:
    try:
        port = int(value)
    except ValueError:
        port = -1
    if not 0 <= port <= 65535:
        raise ValidationError(f"ALIEN_PORT {value!r} is not a port number", field="ALIEN_PORT")
    return port


def _triggers(text: str) -> tuple[Trigger, ...]:
    if not text.strip():
        return ()
    try:
        return _TRIGGERS.validate_python(json.loads(text))
    except json.JSONDecodeError as exc:
        raise ValidationError(
            f"ALIEN_TRIGGERS is not JSON ({exc.msg})", field="ALIEN_TRIGGERS"
        ) from None
    except PydanticValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise ValidationError(
            f"ALIEN_TRIGGERS is invalid at {where}: {first['msg']}", field="ALIEN_TRIGGERS"
        ) from None
