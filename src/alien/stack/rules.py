"""Rules for single values in a stack: names, entrypoints, code paths, env vars, cron schedules.

Each rule is a plain function that returns the value in canonical form or raises ``ValueError``
with a message saying what to do; the manifest models attach them as pydantic validators
(``ResourceId`` etc. below), so the builder API and untrusted manifest JSON are checked by the same
code. Messages quote the offending value through ``show`` (repr, truncated) so a hostile value can
neither break the one-line error format nor flood a log. Env *values* are never quoted.
"""

from __future__ import annotations

import re
from pathlib import PurePosixPath
from typing import Annotated

from croniter import croniter
from pydantic import AfterValidator, StrictStr

_ID = re.compile(r"[a-z](?:[a-z0-9-]{0,61}[a-z0-9])?")
_TRIGGER_NAME = re.compile(r"[a-z](?:[a-z0-9_-]{0,61}[a-z0-9])?")
_DOTTED = r"[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*"
_ENTRYPOINT = re.compile(rf"{_DOTTED}:{_DOTTED}")
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,127}")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")

#: Env names starting with this are set by the platform (ALIEN_BINDINGS, ALIEN_PORT, ...).
RESERVED_ENV_PREFIX = "ALIEN_"
MAX_CODE_SRC = 1024
MAX_CRON = 200
CRON_FIELDS = (5, 6)


def show(value: object, limit: int = 40) -> str:
    """A safe one-line rendering of an untrusted value for an error message."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def check_resource_id(value: str) -> str:
    """Resource ids (and stack names) become cloud resource names and DNS labels."""
    if not _ID.fullmatch(value):
        raise ValueError(
            f"{show(value)} is not a valid name: use 1-63 lowercase letters, digits and '-', "
            "starting with a letter and not ending with '-'"
        )
    return value


def check_trigger_name(value: str) -> str:
    """Cron trigger names are what ``@alien.on_cron(name)`` refers to in app code."""
    if not _TRIGGER_NAME.fullmatch(value):
        raise ValueError(
            f"{show(value)} is not a valid trigger name: use 1-63 lowercase letters, digits, "
            "'-' and '_', starting with a letter and ending with a letter or digit"
        )
    return value


def check_entrypoint(value: str) -> str:
    """``module.path:attribute``: the ASGI app (or module) the function runtime imports."""
    if len(value) > 255 or not _ENTRYPOINT.fullmatch(value):
        raise ValueError(
            f"entrypoint {show(value)} must have the form 'module.path:attribute', "
            "e.g. 'app:app' for the object `app` in app.py"
        )
    module = value.split(":", 1)[0]
    if module.endswith(".py"):
        raise ValueError(
            f"entrypoint {show(value)} names a file: use the module path 'module.path:attribute', "
            f"e.g. '{module[:-3]}:{value.split(':', 1)[1]}'"
        )
    return value


def check_code_src(value: str) -> str:
    """A code directory relative to the app directory, in canonical POSIX form.

    Only the syntax is checked here (no absolute paths, no ``..``, no backslashes or control
    characters); whether it exists and stays inside the app directory once symlinks are resolved
    needs the app directory and is checked in ``alien.stack.checks``.
    """
    hint = "give a directory relative to the app directory (the one holding alien_stack.py)"
    if not value or len(value) > MAX_CODE_SRC:
        raise ValueError(f"code src must be 1-{MAX_CODE_SRC} characters: {hint}")
    if "\\" in value or _CONTROL.search(value):
        raise ValueError(f"code src {show(value)} contains '\\' or control characters: {hint}")
    path = PurePosixPath(value)
    if path.is_absolute():
        raise ValueError(f"code src {show(value)} is absolute: {hint}")
    if ".." in path.parts:
        raise ValueError(f"code src {show(value)} uses '..' to leave the app directory: {hint}")
    return path.as_posix()


def check_env_name(value: str) -> str:
    if not _ENV_NAME.fullmatch(value):
        raise ValueError(
            f"env name {show(value)} is invalid: use letters, digits and '_', not starting "
            "with a digit, at most 128 characters"
        )
    if value.upper().startswith(RESERVED_ENV_PREFIX):
        raise ValueError(
            f"env name {show(value)} is reserved: names starting with {RESERVED_ENV_PREFIX} are "
            "set by the platform; choose another name"
        )
    return value


def check_env_value(value: str) -> str:
    """Env values may be anything a process environment can hold; never quoted in errors."""
    if "\x00" in value:
        raise ValueError("env value contains a NUL character, which no environment can hold")
    return value


def check_cron(value: str) -> str:
    """A cron schedule in 5-field form, or 6-field form whose 6th field is seconds.

    Whitespace is collapsed so equal schedules give equal manifests. ``strict`` croniter also
    refuses schedules that can never fire (``0 0 31 2 *``). Aliases such as ``@daily`` and 7-field
    (year) forms are refused so every platform's scheduler can express what the manifest holds.
    """
    schedule = " ".join(value.split())
    fields = len(schedule.split(" ")) if schedule else 0
    form = "use 5 fields 'minute hour day month weekday' (e.g. '0 3 * * *'), or 6 with seconds last"
    if len(value) > MAX_CRON:
        raise ValueError(f"cron schedule is longer than {MAX_CRON} characters: {form}")
    if fields not in CRON_FIELDS:
        raise ValueError(f"cron schedule {show(value)} has {fields} fields: {form}")
    if not croniter.is_valid(schedule, strict=True):
        raise ValueError(f"cron schedule {show(value)} is invalid or can never fire: {form}")
    return schedule


ResourceId = Annotated[StrictStr, AfterValidator(check_resource_id)]
TriggerName = Annotated[StrictStr, AfterValidator(check_trigger_name)]
Entrypoint = Annotated[StrictStr, AfterValidator(check_entrypoint)]
CodeSrc = Annotated[StrictStr, AfterValidator(check_code_src)]
EnvName = Annotated[StrictStr, AfterValidator(check_env_name)]
EnvValue = Annotated[StrictStr, AfterValidator(check_env_value)]
CronSchedule = Annotated[StrictStr, AfterValidator(check_cron)]
