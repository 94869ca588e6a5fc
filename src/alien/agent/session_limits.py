"""What one debug session may reach through this agent: the customer's ``debug.json`` narrowed
by the deployment's policy (a ``tunnel_open``'s ``limits``).

The customer decides in two places: ``debug.json`` here, and the deployment's policy at the
manager (``alien-deploy policy set --channels/--egress-allow``; the vendor's debug policy may
narrow its channels further). A session gets the intersection: a channel the limits leave out
(``aws``, ``gcp``, ``kubernetes``, ``azure``; ``http`` is HTTP egress and ``CONNECT``) is not
offered at all, and egress reaches a destination only if both allowlists allow it
(:func:`~alien.tunnel.forward.intersect_allowlists`). The result is an ordinary
:class:`~alien.agent.debug_config.DebugConfig`, so what reads it — the offer the CLI sets its
environment from, every upstream — needs no check of its own.
"""

from __future__ import annotations

from alien.agent.debug_config import DebugConfig, HttpDebugConfig
from alien.protocol.agent_channel import DebugLimits
from alien.tunnel.forward import intersect_allowlists


def narrowed(config: DebugConfig, limits: DebugLimits | None) -> DebugConfig:
    """``config`` with what ``limits`` leave out removed (``None``: nothing to narrow)."""
    if limits is None:
        return config
    channels = set(limits.channels)
    http = config.http if "http" in channels else None
    if http is not None and limits.egress_allow is not None:
        allow = intersect_allowlists(http.allow, limits.egress_allow)
        http = HttpDebugConfig(allow=allow) if allow else None
    return DebugConfig(
        aws=config.aws if "aws" in channels else None,
        http=http,
        gcp=config.gcp if "gcp" in channels else None,
        kubernetes=config.kubernetes if "kubernetes" in channels else None,
        azure=config.azure if "azure" in channels else None,
    )
