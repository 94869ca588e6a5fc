"""Local vault at rest: encrypted, private, key apart from data, tamper-evident."""

from __future__ import annotations

import os
import stat
import threading
from pathlib import Path

import pytest

from alien.bindings.local import LocalVault
from alien.bindings.local.sealed import KEY_BYTES, PAD, load_or_create_key
from alien.errors import BindingError

SECRET_NAME = "stripe_live_api_key"
SECRET_VALUE = "sk_live_4242424242VERYSECRETVALUE"


@pytest.fixture
def paths(tmp_path: Path) -> tuple[Path, Path]:
    return tmp_path / "resources" / "vault" / "creds.vault", tmp_path / "keys" / "creds.key"


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_nothing_readable_in_the_file(paths: tuple[Path, Path]) -> None:
    data, key = paths
    vault = LocalVault(data, key)
    vault.set_secret(SECRET_NAME, SECRET_VALUE)
    raw = data.read_bytes()
    for needle in (SECRET_NAME, SECRET_VALUE, "VERYSECRET", "stripe"):
        assert needle.encode() not in raw
        assert needle.encode("utf-16-le") not in raw
    assert key.read_bytes() not in raw
    assert LocalVault(data, key).get_secret(SECRET_NAME) == SECRET_VALUE


def test_files_are_private_and_key_lives_apart(paths: tuple[Path, Path]) -> None:
    data, key = paths
    LocalVault(data, key).set_secret("a", "b")
    assert mode(data) == 0o600
    assert mode(key) == 0o600
    assert len(key.read_bytes()) == KEY_BYTES
    assert key.parent != data.parent
    # No stray temp files or plaintext copies next to the data.
    assert sorted(p.name for p in data.parent.iterdir()) == ["creds.vault", "creds.vault.lock"]


def test_key_in_the_data_directory_is_refused(tmp_path: Path) -> None:
    with pytest.raises(BindingError, match="outside the vault's data directory") as err:
        LocalVault(tmp_path / "v.vault", tmp_path / "v.key")
    assert err.value.field == "key_file"


def test_readable_key_file_is_refused(paths: tuple[Path, Path]) -> None:
    data, key = paths
    LocalVault(data, key)
    key.chmod(0o644)
    with pytest.raises(BindingError, match="chmod 600"):
        LocalVault(data, key)


def test_wrong_key_or_tampering_is_detected(paths: tuple[Path, Path], tmp_path: Path) -> None:
    data, key = paths
    LocalVault(data, key).set_secret("a", "b")
    with pytest.raises(BindingError, match="cannot be decrypted") as err:
        LocalVault(data, tmp_path / "other" / "k.key").get_secret("a")
    assert err.value.field == "key_file"
    raw = bytearray(data.read_bytes())
    raw[-1] ^= 1
    data.write_bytes(bytes(raw))
    with pytest.raises(BindingError, match="cannot be decrypted"):
        LocalVault(data, key).list_secrets()
    data.write_bytes(b"{}")
    with pytest.raises(BindingError, match="not an alien vault file"):
        LocalVault(data, key).list_secrets()


def test_padding_hides_sizes(paths: tuple[Path, Path]) -> None:
    data, key = paths
    vault = LocalVault(data, key)
    vault.set_secret("a", "x")
    small = data.stat().st_size
    vault.set_secret("a", "x" * 100)
    assert data.stat().st_size == small
    assert (small - 8 - 12 - 16) % PAD == 0


def test_every_write_uses_a_fresh_nonce(paths: tuple[Path, Path]) -> None:
    data, key = paths
    vault = LocalVault(data, key)
    vault.set_secret("a", "1")
    first = data.read_bytes()
    vault.set_secret("a", "2")
    vault.set_secret("a", "1")
    assert data.read_bytes() != first


def test_readers_see_other_instances_writes(paths: tuple[Path, Path]) -> None:
    data, key = paths
    reader, writer = LocalVault(data, key), LocalVault(data, key)
    assert reader.list_secrets() == []
    writer.set_secret("n", "1")
    assert reader.get_secret("n") == "1"  # cache invalidated by the file change
    writer.set_secret("n", "2")
    assert reader.get_secret("n") == "2"


def test_racing_key_creation_yields_one_key(tmp_path: Path) -> None:
    key = tmp_path / "keys" / "k.key"
    barrier = threading.Barrier(8)
    seen: list[bytes] = []

    def create() -> None:
        barrier.wait()
        seen.append(load_or_create_key(key))

    threads = [threading.Thread(target=create) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(set(seen)) == 1 and len(seen) == 8
    assert os.listdir(key.parent) == ["k.key"]


def test_secret_values_never_in_repr(paths: tuple[Path, Path]) -> None:
    data, key = paths
    vault = LocalVault(data, key)
    vault.set_secret(SECRET_NAME, SECRET_VALUE)
    assert SECRET_VALUE not in repr(vault)
    assert SECRET_VALUE not in repr(vault.aio)


def test_empty_precreated_file_is_an_empty_vault(paths: tuple[Path, Path]) -> None:
    data, key = paths
    data.parent.mkdir(parents=True)
    data.touch(mode=0o600)
    vault = LocalVault(data, key)
    assert vault.list_secrets() == []
    vault.set_secret("a", "b")
    assert LocalVault(data, key).get_secret("a") == "b"
