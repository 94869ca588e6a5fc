"""Read the secrets the platform passed through an inherited pipe (``ALIEN_SECRETS_FD``).

See :mod:`alien.protocol.runtime_secrets` for why not the environment.
"""

from __future__ import annotations

import json
import os
from collections.abc import MutableMapping

from alien.errors import ValidationError
from alien.protocol.runtime_secrets import SECRETS_FD_VARIABLE


def read_secrets(environ: MutableMapping[str, str]) -> dict[str, str]:
    """The secrets behind ``ALIEN_SECRETS_FD`` (none if unset); the variable is removed and
    the descriptor closed, so nothing the app starts inherits either."""
    raw = environ.pop(SECRETS_FD_VARIABLE, None)
    if raw is None:
        return {}
    try:
        fd = int(raw)
        with os.fdopen(fd, "rb") as pipe:
            data = pipe.read()
    except (ValueError, OSError) as exc:
        raise ValidationError(
            f"{SECRETS_FD_VARIABLE} {raw!r} is not a readable file descriptor",
            field=SECRETS_FD_VARIABLE,
        ) from exc
    try:
        secrets = json.loads(data)
    except ValueError:
        secrets = None
    if not isinstance(secrets, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in secrets.items()
    ):
        # Never echo the content: it is made of secrets.
        raise ValidationError(
            f"{SECRETS_FD_VARIABLE} did not hold a JSON object of strings",
            field=SECRETS_FD_VARIABLE,
        )
    return secrets
