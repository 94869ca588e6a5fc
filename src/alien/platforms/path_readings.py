"""How a server may read a request's path, for screens that refuse paths (credential minting in
the Kubernetes and Google channels): every reading is judged, and a path is refused when any
reading of it is, so that a refused path stays refused however it is spelled.

The path judged is the one the agent sends (:func:`sent_target`: httpx has already resolved its
literal ``.`` and ``..`` segments), not the one the caller wrote. A server then reads it in ways
that are not all known here — Go's ``net/http`` (kube-apiserver) percent-decodes the whole path,
``%2F`` included, before routing; Google's front end matches path templates; a proxy in front
may collapse ``//`` or resolve dot segments; Kubernetes routes case-sensitively but a proxy need
not. So :func:`path_readings` gives all of them: the path percent-decoded until nothing changes
(``%252F`` is ``/`` to a server behind one that decodes too), a backslash taken as ``/``, in
lower case, with empty segments kept or dropped and dot segments kept or resolved. The readings
over-refuse oddly spelled paths (a storage object named ``a%2F..%2Fb``), never under-refuse.
"""

from __future__ import annotations

from urllib.parse import unquote

import httpx

Reading = tuple[str, ...]
"""A path as segments: ``("api", "v1", "namespaces")`` for ``/api/v1/namespaces``."""


def sent_target(target: str) -> str:
    """The path and query the agent sends for an absolute-form ``target`` (what ``httpx`` makes
    of it: literal dot segments resolved, characters outside a path percent-encoded)."""
    return httpx.URL(target).raw_path.decode("ascii")


def path_readings(path: str) -> frozenset[Reading]:
    """Every reading of ``path`` (a path as sent, its query ignored)."""
    path = path.partition("?")[0]
    while (decoded := unquote(path)) != path:
        path = decoded
    kept = path.replace("\\", "/").lower().split("/")[1:]
    while kept and not kept[-1]:
        kept.pop()
    collapsed = [segment for segment in kept if segment]
    return frozenset(
        (tuple(kept), tuple(collapsed), _resolved(kept), _resolved(collapsed)),
    )


def _resolved(segments: list[str]) -> Reading:
    """``segments`` with dot segments removed (RFC 3986 §5.2.4)."""
    out: list[str] = []
    for segment in segments:
        if segment == "..":
            if out:
                out.pop()
        elif segment != ".":
            out.append(segment)
    return tuple(out)
