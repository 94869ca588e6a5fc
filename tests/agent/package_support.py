"""Hand-made hostile release packages: raw tar headers that ``tarfile``'s writer would not emit."""

from __future__ import annotations

import gzip
import tarfile
from pathlib import Path

BLOCK = 512
_KINDS = {
    "pax": (tarfile.XHDTYPE, tarfile.USTAR_FORMAT),
    "global": (tarfile.XGLTYPE, tarfile.USTAR_FORMAT),
    "longname": (tarfile.GNUTYPE_LONGNAME, tarfile.GNU_FORMAT),
    "longlink": (tarfile.GNUTYPE_LONGLINK, tarfile.GNU_FORMAT),
}


def header(kind: str, size: int) -> bytes:
    """The 512-byte header block of an extended header (``_KINDS``) declaring ``size`` bytes."""
    kind_type, fmt = _KINDS[kind]
    info = tarfile.TarInfo("././@LongLink" if fmt == tarfile.GNU_FORMAT else "././@PaxHeader")
    info.type = kind_type
    info.size = size
    return info.tobuf(format=fmt)


def extended(kind: str, payload: bytes) -> bytes:
    """An extended header with its payload, padded to whole blocks."""
    return header(kind, len(payload)) + payload + bytes(-len(payload) % BLOCK)


def member(name: str, data: bytes = b"", kind: bytes = tarfile.REGTYPE) -> bytes:
    """A member with its data: a regular file unless ``kind`` says otherwise (GNU format)."""
    info = tarfile.TarInfo(name)
    info.type = kind
    info.size = len(data)
    return info.tobuf(format=tarfile.GNU_FORMAT) + data + bytes(-len(data) % BLOCK)


RAW_MANIFEST = member("manifest.json", b"{}")


def pax_records(records: dict[str, str]) -> bytes:
    """PAX ``"%d %s=%s\\n"`` records, each length prefix counting itself."""
    out = b""
    for key, value in records.items():
        body = f" {key}={value}\n".encode()
        length = len(body) + len(str(len(body)))
        length = len(body) + len(str(length))
        out += str(length).encode() + body
    return out


def write_gz(path: Path, *chunks: bytes) -> Path:
    """``chunks`` and the end-of-archive blocks, gzip-compressed into ``path``."""
    with gzip.open(path, "wb") as gz:
        for chunk in chunks:
            gz.write(chunk)
        gz.write(bytes(2 * BLOCK))
    return path


def header_bomb(path: Path, kind: str, size: int) -> Path:
    """A small file whose one extended header declares ``size`` bytes of zeros (streamed)."""
    zeros = bytes(1 << 20)
    with gzip.open(path, "wb", compresslevel=9) as gz:
        gz.write(header(kind, size))
        left = size + (-size % BLOCK) + 2 * BLOCK
        while left > 0:
            gz.write(zeros[: min(left, len(zeros))])
            left -= len(zeros)
    return path


def cpu_heavy(path: Path, members: int) -> Path:
    """A valid package whose PAX headers take ~1.5 ms of CPU each to parse (within every limit)."""
    records = extended("pax", pax_records({f"c{i}": "v" for i in range(800)}))
    return write_gz(path, RAW_MANIFEST, *(records + member(f"code/f{i}") for i in range(members)))


def fat_headers(path: Path, members: int) -> Path:
    """A valid package whose every member carries a PAX header of 7 KiB of values."""
    records = extended("pax", pax_records({f"comment{i}": "v" * 1000 for i in range(7)}))
    return write_gz(path, RAW_MANIFEST, *(records + member(f"code/f{i}") for i in range(members)))
