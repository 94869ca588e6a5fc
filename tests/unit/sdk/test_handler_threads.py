"""The threads sync command handlers run on: reused when idle, never waited for when busy."""

from __future__ import annotations

import threading
import time

from alien.sdk.command_execution import HandlerThreads


def _wait_until(condition, timeout: float = 5.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.005)


def test_an_idle_thread_is_reused() -> None:
    pool = HandlerThreads()
    seen: list[int] = []
    for _ in range(5):
        done = threading.Event()
        pool.run(lambda done=done: (seen.append(threading.get_ident()), done.set()), "t")
        assert done.wait(5)
        _wait_until(lambda: pool.idle == 1)
    assert len(set(seen)) == 1


def test_a_stuck_handler_does_not_hold_up_the_next_call() -> None:
    pool = HandlerThreads()
    release = threading.Event()
    pool.run(release.wait, "stuck")
    done = threading.Event()
    pool.run(done.set, "next")
    assert done.wait(5)
    release.set()


def test_idle_threads_retire_and_claimed_work_is_never_lost() -> None:
    pool = HandlerThreads(idle_seconds=0.01, max_idle=4)
    for _ in range(200):  # calls racing the idle timeout: each must still run
        done = threading.Event()
        pool.run(done.set, "race")
        assert done.wait(5)
        time.sleep(0.01)
    _wait_until(lambda: pool.idle == 0)


def test_a_burst_leaves_at_most_max_idle_threads() -> None:
    pool = HandlerThreads(max_idle=2)
    gate = threading.Event()
    finished = threading.Semaphore(0)

    def work() -> None:
        gate.wait()
        finished.release()

    before = threading.active_count()
    for _ in range(8):
        pool.run(work, "burst")
    gate.set()
    for _ in range(8):
        assert finished.acquire(timeout=5)
    _wait_until(lambda: threading.active_count() - before == 2)
    assert pool.idle == 2
