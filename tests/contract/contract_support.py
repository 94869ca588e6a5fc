"""Helpers for the contract suites, including the bodies of worker processes.

Workers run in fresh interpreters (``spawn``), so they receive a binding entry and open the
resource themselves, exactly like separate function processes sharing one resource.
"""

from __future__ import annotations

import multiprocessing
import queue as queue_module
from collections.abc import Callable, Sequence
from multiprocessing.synchronize import Event
from typing import Any, TypeVar

from alien.bindings.base import Kv, Queue, Resource, Vault
from alien.bindings.env import parse_binding

R = TypeVar("R", bound=Resource)
_SPAWN = multiprocessing.get_context("spawn")
PROCESS_TIMEOUT = 60.0


def open_entry(entry: dict[str, Any], cls: type[R] = Resource) -> R:  # type: ignore[assignment]
    """Open a backend from a binding entry, as ``alien.<kind>(name)`` would."""
    backend = parse_binding("res", entry).open()
    assert isinstance(backend, cls)
    return backend


def new_channel() -> Any:
    """A queue for results from worker processes (spawn-safe)."""
    return _SPAWN.Queue()


def new_event() -> Event:
    return _SPAWN.Event()


def run_processes(target: Callable[..., None], arg_lists: Sequence[tuple[Any, ...]]) -> list[Any]:
    """Start one process per argument tuple; return them (already started)."""
    processes = [_SPAWN.Process(target=target, args=args, daemon=True) for args in arg_lists]
    for process in processes:
        process.start()
    return processes


def join_all(processes: Sequence[Any]) -> None:
    """Wait for ``processes``; fail loudly if one hangs or crashes."""
    for process in processes:
        process.join(PROCESS_TIMEOUT)
        if process.is_alive():
            process.kill()
            raise AssertionError(f"worker {process.name} did not finish")
        assert process.exitcode == 0, f"worker {process.name} exited with {process.exitcode}"


def drain(channel: Any, count: int, timeout: float = PROCESS_TIMEOUT) -> list[Any]:
    """Exactly ``count`` items from ``channel`` (each waited for up to ``timeout``)."""
    items = []
    for _ in range(count):
        try:
            items.append(channel.get(timeout=timeout))
        except queue_module.Empty:
            raise AssertionError(f"got {len(items)} of {count} results") from None
    return items


# --- worker bodies (module level so spawn can import them) -----------------------------------


def kv_racer(entry: dict[str, Any], worker: int, keys: int, out: Any) -> None:
    """Race for every key with set_if_absent; report which keys this worker won."""
    kv = open_entry(entry, Kv)
    won = [i for i in range(keys) if kv.set_if_absent(f"race/{i}", f"w{worker}")]
    for i in range(keys):
        kv.set(f"own/{worker}/{i}", str(i))
    out.put((worker, won))
    kv.close()


def queue_producer(entry: dict[str, Any], worker: int, count: int) -> None:
    queue = open_entry(entry, Queue)
    for i in range(count):
        queue.send(f"{worker}:{i}")
    queue.close()


def queue_consumer(entry: dict[str, Any], out: Any, stop: Event) -> None:
    """Receive and ack until told to stop; report every body received."""
    queue = open_entry(entry, Queue)
    while not stop.is_set():
        for message in queue.receive(max_messages=5, wait=0.2):
            out.put(message.text)
            assert queue.ack(message)
    queue.close()


def vault_writer(entry: dict[str, Any], worker: int, count: int) -> None:
    vault = open_entry(entry, Vault)
    for i in range(count):
        vault.set_secret(f"w{worker}-{i}", f"value-{worker}-{i}")
    vault.close()
