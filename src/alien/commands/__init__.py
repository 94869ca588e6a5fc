"""Remote commands from Python: ``CommandsClient`` (sync and asyncio), fan-out to a group.

* ``client`` — :class:`CommandsClient`: ``invoke``/``invoke_async``, ``submit``, ``wait``,
  ``get``, ``cancel``, ``list``, ``fan_out``/``fan_out_async``
* ``flows`` — what each call does, written once for both flavours (sans-I/O)
* ``fanout`` — the fan-out plan: bounded concurrency and an error budget
* ``models`` — :class:`Command`, :class:`CommandFailed`, :class:`FanOutResult`

The HTTP API behind it is in docs/API.md ("Remote commands").
"""

from __future__ import annotations

from alien.commands.client import DEFAULT_TIMEOUT, CommandsClient
from alien.commands.models import Command, CommandFailed, FanOutResult

__all__ = ["DEFAULT_TIMEOUT", "Command", "CommandFailed", "CommandsClient", "FanOutResult"]
