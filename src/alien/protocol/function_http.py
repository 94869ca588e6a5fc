"""How a platform proves to a function's HTTP app that a request comes from the platform.

The platform grants every function process an endpoint for its app and a secret
(``ALIEN_HTTP_ADDRESS``, ``ALIEN_HTTP_TOKEN``; docs/ARCHITECTURE.md, "Binding environment"). The
platform's callers (the local ingress proxy) send the secret in this header with every request
and WebSocket handshake; the runtime refuses anything without it and removes it before the app
sees the request, so app code never holds it. Shared here because both sides must spell it alike
and neither layer may import the other.
"""

from __future__ import annotations

HTTP_TOKEN_HEADER = "alien-http-token"
