"""What a fresh interpreter imports: for tests that keep a start-up path free of a library."""

from __future__ import annotations

import subprocess
import sys


def imports_module(code: str, module: str) -> bool:
    """Whether running ``code`` in a fresh interpreter leaves ``module`` in ``sys.modules``."""
    probe = f"{code}\nimport sys\nprint({module!r} in sys.modules)"
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    return done.stdout.strip().splitlines()[-1] == "True"
