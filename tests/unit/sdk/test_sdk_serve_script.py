"""``alien.serve(app)`` in a module run directly serves it with uvicorn (no platform needed)."""

from __future__ import annotations

import re
import subprocess
import sys
import textwrap
from pathlib import Path

import httpx

APP = textwrap.dedent(
    """
    import alien

    async def app(scope, receive, send):
        if scope["type"] != "http":
            return
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"served by the script"})

    alien.serve(app)
    """
)


def test_running_the_module_directly_serves_the_app(tmp_path: Path) -> None:
    (tmp_path / "app.py").write_text(APP)
    proc = subprocess.Popen(
        [sys.executable, "app.py"],
        cwd=tmp_path,
        env={"ALIEN_PORT": "0", "PATH": "/usr/bin:/bin"},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert proc.stdout is not None
        url = None
        for line in proc.stdout:  # uvicorn logs the port it bound
            if match := re.search(r"Uvicorn running on (http://\S+)", line):
                url = match[1]
                break
        assert url, "the script never started serving"
        assert httpx.get(url, timeout=5).text == "served by the script"
    finally:
        proc.terminate()
        proc.wait(timeout=10)
