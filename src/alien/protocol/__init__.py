"""Wire formats and state machines shared by the manager, agent, SDK and CLI. No I/O, no clock.

* :mod:`~alien.protocol.deployment` — the deployment lifecycle and the agent's convergence decision;
* :mod:`~alien.protocol.commands` — the remote-command lifecycle (leases, expiry, responses) and,
  via :mod:`~alien.protocol.command_messages`, the command envelope and response;
* :mod:`~alien.protocol.tunnel` — sans-I/O stream multiplexing for the debug tunnel (frames in
  :mod:`~alien.protocol.frames`, events in :mod:`~alien.protocol.tunnel_events`);
* :mod:`~alien.protocol.agent_channel` — the agent <-> manager messages;
* :mod:`~alien.protocol.wire` — the pydantic base and validation helpers they share;
* :mod:`~alien.protocol.errors` — ``IllegalTransition``, ``CommandRefused``, tunnel errors.

Nothing is re-exported here on purpose: importing one protocol module does not import the others.
"""
