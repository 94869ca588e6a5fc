"""Import a function's entrypoint and find the ASGI app to serve.

The entrypoint is ``module:attribute`` relative to the code directory, which goes first on
``sys.path`` so the function's own modules win over anything installed with the same name.
Importing the module also runs its trigger decorators and any ``alien.serve(app)``, filling the
handler registry. The app is the entrypoint attribute if the module has it, else the app handed to
``alien.serve``; a function with triggers only may have neither.
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path
from typing import Any

from alien.errors import ValidationError
from alien.sdk.registry import registry


def import_entrypoint(entrypoint: str, code_dir: Path) -> Any:
    """Import the entrypoint's module; return its ASGI app, or ``None`` when it has none."""
    module_name, _, attribute = entrypoint.partition(":")
    path = str(code_dir)
    if sys.path[:1] != [path]:
        sys.path.insert(0, path)
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name is not None and module_name.startswith(exc.name):
            raise ValidationError(
                f"entrypoint module {module_name!r} not found in {code_dir}",
                field="ALIEN_ENTRYPOINT",
            ) from exc
        raise
    target: Any = module
    for part in attribute.split("."):
        target = getattr(target, part, None)
        if target is None:
            break
    app = target if target is not None else registry.app
    if app is not None and not callable(app):
        raise ValidationError(
            f"entrypoint {entrypoint!r} is a {type(app).__name__}, not an ASGI app",
            field="ALIEN_ENTRYPOINT",
        )
    return app
