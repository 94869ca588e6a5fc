"""``asyncio.wait_for`` is not used in ``src/``: on Python 3.11 it can swallow a cancellation.

When the awaited thing finishes in the same loop turn as the caller is cancelled, 3.11's
``wait_for`` returns its result instead of raising ``CancelledError`` (fixed in 3.12, where it is
built on ``asyncio.timeout``). A lease keeper lost its cancellation that way and renewed a
finished command's lease forever. ``async with asyncio.timeout(...)`` has no such window.
"""

from __future__ import annotations

from pathlib import Path

SRC = Path(__file__).resolve().parents[2] / "src"


def test_src_uses_asyncio_timeout_not_wait_for() -> None:
    offenders = [
        f"{path.relative_to(SRC)}:{number}"
        for path in sorted(SRC.rglob("*.py"))
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if "asyncio.wait_for(" in line
    ]
    assert offenders == [], "use `async with asyncio.timeout(...)` instead: " + ", ".join(offenders)
