"""Remote commands on the manager side: create, dispatch, lease, respond, wait, expire.

Every state change is computed by the pure lifecycle of :mod:`alien.protocol.commands` and
stored by one batching writer (``writer``), so the database is the only place a command's
state lives; what is kept in memory (agent links, waiters, the sweeper's next wake-up) only says
*when* to look again. Modules, one concept each:

* ``settings`` — knobs (lease length, default timeout, payload limit), from ``ALIEN_COMMAND_*``
* ``signing`` — HMAC-signed, expiring URLs for payloads and responses (key in the data dir)
* ``records`` — table rows ↔ protocol ``CommandRecord``, and immutable snapshots of rows
* ``targets`` — which function of a deployment runs a command (manifest + agent detail)
* ``schemas`` / ``views`` — API request and response bodies
* ``writer`` — the single writer, batching many operations into one transaction (on the event
  loop for SQLite, on its own thread for PostgreSQL)
* ``ops`` — the operations it runs: create, agent messages, cancel, sweep, lease, attach
* ``offers`` — building a ``command`` message (envelope + signed URLs) for one delivery
* ``links`` / ``agent_session`` — agents' open WebSockets taking commands
* ``dispatch`` — push dispatchers (``DirectDispatcher``: direct invocation, for ``alien dev``)
* ``waiters`` — in-memory wake-ups for long-polls on a command
* ``sweeper`` — the durable timer that applies passed deadlines and lost leases
* ``center`` — ``CommandCenter``, tying these together for the API routes
"""
