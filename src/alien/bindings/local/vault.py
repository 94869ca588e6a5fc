"""Local vault: all secrets of one vault in a single encrypted file (see :mod:`.sealed`).

Writers take an exclusive ``flock`` and do read-modify-write, then replace the file
atomically; readers need no lock (they always open one complete version) and keep the
decrypted content cached until the file changes (same inode, size and mtime).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from alien.bindings.base import Vault
from alien.bindings.local.config import LocalVaultConfig
from alien.bindings.local.fsutil import ensure_dir, file_lock, write_atomic
from alien.bindings.local.sealed import load_or_create_key, seal, unseal
from alien.errors import BindingError

T = TypeVar("T")
_Stamp = tuple[int, int, int]


class LocalVault(Vault):
    def __init__(self, path: Path, key_file: Path) -> None:
        if key_file.resolve().parent == path.resolve().parent:
            raise BindingError(
                f"the vault key file must live outside the vault's data directory ({path.parent})",
                field="key_file",
            )
        ensure_dir(path.parent)
        self._path = path
        self._lock_path = path.with_name(path.name + ".lock")
        self._key = load_or_create_key(key_file)
        self._cache: tuple[_Stamp, dict[str, str]] | None = None

    @classmethod
    def from_config(cls, resource_id: str, config: LocalVaultConfig) -> LocalVault:
        return cls(config.path, config.key_file)

    def _load(self) -> dict[str, str]:
        try:
            fd = os.open(self._path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        except FileNotFoundError:
            return {}
        with os.fdopen(fd, "rb") as stream:
            st = os.fstat(fd)
            stamp = (st.st_ino, st.st_size, st.st_mtime_ns)
            if self._cache is not None and self._cache[0] == stamp:
                return self._cache[1]
            blob = stream.read()
            # An empty file is an empty vault (a provisioner may create it up front, 0600).
            secrets = json.loads(unseal(self._key, blob, source=self._path)) if blob else {}
        self._cache = (stamp, secrets)
        return secrets

    def _update(self, change: Callable[[dict[str, str]], T]) -> T:
        """Apply ``change`` to a copy of the secrets under the lock; write if it changed them."""
        with file_lock(self._lock_path):
            current = self._load()
            updated = dict(current)
            result = change(updated)
            if updated != current:
                plaintext = json.dumps(updated, sort_keys=True, ensure_ascii=False)
                write_atomic(self._path, seal(self._key, plaintext.encode("utf-8")))
            return result

    def _get_secret(self, name: str) -> str | None:
        return self._load().get(name)

    def _set_secret(self, name: str, value: str) -> None:
        def assign(secrets: dict[str, str]) -> None:
            secrets[name] = value

        self._update(assign)

    def _delete_secret(self, name: str) -> bool:
        return self._update(lambda secrets: secrets.pop(name, None) is not None)

    def _list_secrets(self) -> list[str]:
        return list(self._load())

    def __repr__(self) -> str:
        return f"LocalVault({str(self._path)!r})"
