"""The local vault's at-rest format: one AES-256-GCM sealed blob per file, key kept apart.

File layout: ``MAGIC || nonce(12) || ciphertext+tag``, with ``MAGIC`` as associated data so a
file of another format or version cannot be mistaken for this one. The whole plaintext is
sealed at once (names included) and padded to a multiple of :data:`PAD` bytes, so the file
reveals neither which secrets exist nor their exact sizes. A fresh random nonce per write
keeps GCM safe: with 96-bit random nonces, collisions are negligible for billions of writes.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from alien.bindings.local.fsutil import create_exclusive, ensure_dir
from alien.errors import BindingError

MAGIC = b"ALVAULT1"
KEY_BYTES = 32
NONCE_BYTES = 12
PAD = 512


def seal(key: bytes, plaintext: bytes) -> bytes:
    """Encrypt ``plaintext`` (padded with spaces, which JSON ignores) under ``key``."""
    padded = plaintext + b" " * (-len(plaintext) % PAD)
    nonce = os.urandom(NONCE_BYTES)
    return MAGIC + nonce + AESGCM(key).encrypt(nonce, padded, MAGIC)


def unseal(key: bytes, blob: bytes, *, source: Path) -> bytes:
    """Decrypt a sealed blob; :class:`BindingError` if it is not ours or fails to verify."""
    if not blob.startswith(MAGIC) or len(blob) < len(MAGIC) + NONCE_BYTES + 16:
        raise BindingError(f"{source} is not an alien vault file", field="path")
    nonce = blob[len(MAGIC) : len(MAGIC) + NONCE_BYTES]
    try:
        return AESGCM(key).decrypt(nonce, blob[len(MAGIC) + NONCE_BYTES :], MAGIC)
    except InvalidTag:
        raise BindingError(
            f"{source} cannot be decrypted with this key (wrong key file, or the file was "
            "modified)",
            field="key_file",
        ) from None


def load_or_create_key(path: Path) -> bytes:
    """The key in ``path``, created (random, 0600) if absent; refuses a key others can read."""
    if not path.exists():
        ensure_dir(path.parent)
        create_exclusive(path, AESGCM.generate_key(bit_length=KEY_BYTES * 8))
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        mode = stat.S_IMODE(os.fstat(fd).st_mode)
        if mode & 0o077:
            raise BindingError(
                f"vault key file {path} has mode {mode:04o}; it must be private to its owner "
                "(chmod 600)",
                field="key_file",
            )
        key = os.read(fd, KEY_BYTES + 1)
    finally:
        os.close(fd)
    if len(key) != KEY_BYTES:
        raise BindingError(
            f"vault key file {path} must hold exactly {KEY_BYTES} bytes", field="key_file"
        )
    return key
