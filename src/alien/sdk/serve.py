"""``alien.serve(app)``: hand an ASGI app to the runtime, or serve it when run as a plain script.

Under a platform the function runtime imports the entrypoint and serves whatever app was
registered, so ``serve`` must not block there. Run directly (``python app.py``) the same module
should still work for a quick local try-out, so ``serve`` starts uvicorn itself when the module
calling it is ``__main__``. The runtime imports the entrypoint under its module name, never as
``__main__``, and anything else importing it (tests, a REPL) gets the same: it only registers.
"""

from __future__ import annotations

import inspect
import os
from typing import Any

from alien.sdk.registry import registry

DEFAULT_PORT = 8000


def serve(app: Any, *, host: str | None = None, port: int | None = None) -> Any:
    """Register ``app`` as this function's HTTP app; serve it with uvicorn if run as a script.

    ``host``/``port`` only apply to the script case; they default to ``ALIEN_HOST``/``ALIEN_PORT``
    or ``127.0.0.1:8000``. Returns ``app`` so ``app = alien.serve(FastAPI())`` reads naturally.
    """
    registry.set_app(app)
    if _called_from_main():
        import uvicorn

        uvicorn.run(
            app,
            host=host or os.environ.get("ALIEN_HOST", "127.0.0.1"),
            port=port if port is not None else int(os.environ.get("ALIEN_PORT", DEFAULT_PORT)),
        )
    return app


def _called_from_main() -> bool:
    frame = inspect.currentframe()
    try:
        caller = frame.f_back.f_back if frame and frame.f_back else None
        return caller is not None and caller.f_globals.get("__name__") == "__main__"
    finally:
        del frame
