"""The secrets one debug session hands to its child process, and nothing else.

The child never sees real cloud credentials: it gets dummy AWS keys, a dummy storage account key
and a bearer token that are valid only at this session's loopback proxy, which checks them and
forwards the request with the deployment's real, scoped identity. They die with the session.
"""

from __future__ import annotations

import base64
import secrets
from dataclasses import dataclass, field

from alien.platforms.azure.shared_key import new_account_key

ACCESS_KEY_PREFIX = "ASIAALIEN"


@dataclass(frozen=True)
class SessionKeys:
    """Per-session dummy credentials (secret parts are never shown by ``repr``)."""

    aws_access_key_id: str
    aws_secret_access_key: str = field(repr=False)
    bearer_token: str = field(repr=False)
    azure_storage_key: str = field(repr=False)
    """Base64 of 64 bytes, the shape of a storage account key (the Azure SDK decodes it)."""

    @classmethod
    def generate(cls) -> SessionKeys:
        # 20 characters like a real key id, so tools that sanity-check the shape accept it.
        suffix = base64.b32encode(secrets.token_bytes(10)).decode()[: 20 - len(ACCESS_KEY_PREFIX)]
        return cls(
            aws_access_key_id=ACCESS_KEY_PREFIX + suffix,
            aws_secret_access_key=secrets.token_urlsafe(30),
            bearer_token=secrets.token_urlsafe(32),
            azure_storage_key=new_account_key(),
        )
