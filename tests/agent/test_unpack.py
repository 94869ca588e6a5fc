"""The agent unpacks in a limited child process: refusals, CPU and wall-clock kills reach it."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable
from pathlib import Path

import pytest
from agent_support import write_app
from package_support import cpu_heavy, header_bomb

from alien.agent.unpack import UnpackLimits, unpack
from alien.client.package import CODE_DIR, MANIFEST_FILE, PackageError, build_package
from alien.stack import dump_manifest, load_stack


async def _longest_stall(work: Awaitable[None]) -> float:
    """Run ``work`` while ticking every 20 ms; the longest the event loop went without a tick."""
    gaps: list[float] = []

    async def tick() -> None:
        last = time.monotonic()
        while True:
            await asyncio.sleep(0.02)
            gaps.append(time.monotonic() - last)
            last = time.monotonic()

    ticker = asyncio.create_task(tick())
    try:
        await work
    finally:
        ticker.cancel()
    return max(gaps, default=0.0)


async def test_a_real_package_unpacks_within_the_default_limits(tmp_path: Path) -> None:
    app = write_app(tmp_path / "app", "v1")
    deep = Path("api", *(f"directory-{i:02d}" for i in range(24)), "module.py")
    (app / deep).parent.mkdir(parents=True)
    (app / deep).write_text("DEEP = 1\n")
    manifest = load_stack(app).manifest()
    build_package(app, manifest, tmp_path / "p.tar.gz")
    await unpack(tmp_path / "p.tar.gz", tmp_path / "out")
    assert (tmp_path / "out" / MANIFEST_FILE).read_bytes() == dump_manifest(manifest)
    assert (tmp_path / "out" / CODE_DIR / deep).read_text() == "DEEP = 1\n"


async def test_a_header_bomb_is_refused_by_the_child(tmp_path: Path) -> None:
    bomb = header_bomb(tmp_path / "bomb.tar.gz", "pax", 64 * 1024**2)
    started = time.monotonic()
    with pytest.raises(PackageError, match="extended tar header of 67108864 bytes") as err:
        await unpack(bomb, tmp_path / "out")
    assert err.value.field == "package"
    assert time.monotonic() - started < 10


async def test_too_much_cpu_kills_the_child_and_the_event_loop_keeps_running(
    tmp_path: Path,
) -> None:
    """About 5 s of parsing (3000 headers of 600 PAX records) against a 1 s CPU limit."""
    heavy = cpu_heavy(tmp_path / "heavy.tar.gz", 3000)

    async def killed() -> None:
        with pytest.raises(PackageError, match="more than 1 s of CPU time"):
            await unpack(heavy, tmp_path / "out", UnpackLimits(cpu_seconds=1, wall_seconds=60))

    assert await _longest_stall(killed()) < 0.5


async def test_the_wall_clock_deadline_kills_the_child(tmp_path: Path) -> None:
    heavy = cpu_heavy(tmp_path / "heavy.tar.gz", 3000)
    started = time.monotonic()
    with pytest.raises(PackageError, match=r"took longer than 0\.5 s and was stopped"):
        await unpack(heavy, tmp_path / "out", UnpackLimits(cpu_seconds=60, wall_seconds=0.5))
    assert time.monotonic() - started < 5
