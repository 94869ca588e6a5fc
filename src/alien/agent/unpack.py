"""Unpacking a release package in a child process with memory, CPU and time limits.

``extract_package`` refuses what it can recognise, but the archive is hostile and tarfile's own
flaws are out of our hands (CVE-2024-6232's quadratic regex holds the GIL). In a worker thread
such a flaw would exhaust the agent's memory or stall its event loop, and with it heartbeats and
commands; in a child it runs into ``RLIMIT_AS`` or ``RLIMIT_CPU``, or the parent kills it at the
wall-clock deadline, and the agent gets a ``PackageError`` naming which.

The child is ``python -m alien.agent.unpack ARCHIVE TARGET MEMORY_BYTES CPU_SECONDS``: it sets
its limits before touching the archive, exits 0 when unpacked, and otherwise exits
``_REFUSED`` with ``PackageError``'s message on stderr or ``_OUT_OF_MEMORY``.
"""

from __future__ import annotations

import asyncio
import resource
import signal
import sys
from dataclasses import dataclass
from pathlib import Path

from alien.client.package import PackageError, extract_package

_REFUSED = 2
_OUT_OF_MEMORY = 3
_MAX_STDERR = 2000


@dataclass(frozen=True)
class UnpackLimits:
    """Bounds for one unpacking; generous for real packages (at most 4 GiB of files).

    Unpacking streams, so memory stays small whatever the package's size; the CPU time is
    mostly inflating and writing, well under a minute for the largest allowed package.
    """

    memory_bytes: int = 1024**3
    cpu_seconds: int = 300
    wall_seconds: float = 600.0


async def unpack(archive: Path, target: Path, limits: UnpackLimits | None = None) -> None:
    """``extract_package(archive, target)`` in a limited child; ``PackageError`` if it fails."""
    limits = limits or UnpackLimits()
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        __name__,
        str(archive),
        str(target),
        str(limits.memory_bytes),
        str(limits.cpu_seconds),
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        async with asyncio.timeout(limits.wall_seconds):
            _, err = await proc.communicate()
    except TimeoutError:
        raise PackageError(
            f"unpacking the package took longer than {limits.wall_seconds:g} s and was stopped",
            field="package",
        ) from None
    finally:
        if proc.returncode is None:  # timed out or cancelled: the child must not outlive us
            proc.kill()
            await proc.wait()
    _raise_for(proc.returncode, err.decode(errors="replace").strip(), limits)


def _raise_for(returncode: int | None, stderr: str, limits: UnpackLimits) -> None:
    """Name what ended the child: the deployment's failure reason is all the operator sees."""
    if returncode == 0:
        return
    if returncode == _REFUSED:
        message = stderr[-_MAX_STDERR:]
    elif returncode == _OUT_OF_MEMORY:
        message = f"unpacking the package needed more than {limits.memory_bytes} bytes of memory"
    elif returncode == -signal.SIGXCPU:
        message = f"unpacking the package used more than {limits.cpu_seconds} s of CPU time"
    elif returncode is not None and returncode < 0:
        message = f"unpacking the package was killed by {signal.Signals(-returncode).name}"
    else:
        last = stderr.splitlines()[-1][:_MAX_STDERR] if stderr else "no output"
        message = f"unpacking the package failed (exit status {returncode}): {last}"
    raise PackageError(message, field="package")


def _lower_limit(which: int, soft: int, hard: int) -> None:
    """Set limits no higher than the inherited hard limit: raising that needs privileges."""
    _, inherited = resource.getrlimit(which)
    if inherited != resource.RLIM_INFINITY:
        soft, hard = min(soft, inherited), min(hard, inherited)
    resource.setrlimit(which, (soft, hard))


def main(argv: list[str]) -> int:
    """The child: limits first, so even tarfile's first read of the archive is bounded."""
    archive, target, memory_bytes, cpu_seconds = argv
    _lower_limit(resource.RLIMIT_AS, int(memory_bytes), int(memory_bytes))
    # SIGXCPU at the soft limit ends the process; SIGKILL a second later if it was ignored.
    _lower_limit(resource.RLIMIT_CPU, int(cpu_seconds), int(cpu_seconds) + 1)
    try:
        extract_package(Path(archive), Path(target))
    except PackageError as exc:
        print(exc.message, file=sys.stderr)
        return _REFUSED
    except MemoryError:
        return _OUT_OF_MEMORY  # printing could need memory; the status says it all
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
