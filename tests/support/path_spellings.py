"""Other spellings of a URL path that a server (or a proxy in front of one) may read as the same
path: characters percent-encoded (``/`` as ``%2F`` too), letters in another case, ``//`` for
``/``, ``./`` and ``<segment>/../`` inserted (literal or encoded), a trailing ``/``. For the
property that a path refused by a credential screen stays refused however it is spelled."""

from __future__ import annotations

from hypothesis import strategies as st


@st.composite
def _character(draw: st.DrawFn, char: str) -> str:
    if draw(st.booleans()):
        hex_digits = f"{ord(char):02X}"
        return "%" + (hex_digits.lower() if draw(st.booleans()) else hex_digits)
    return char.swapcase() if draw(st.booleans()) else char


_DETOURS = ["", "./", "%2e/", "junk/%2E%2e/"]
"""Nothing, or segments a server resolves away (``junk/../`` only after a literal ``/``: after
``%2F`` the ``..`` would take away the segment the ``%2F`` is part of)."""


@st.composite
def spellings(draw: st.DrawFn, path: str) -> str:
    """A spelling of ``path`` (``/a/b:verb``; a query is kept as it is)."""
    path, mark, query = path.partition("?")
    out = []
    for index, segment in enumerate(path.split("/")[1:]):
        separators = ["/", "//"] if index == 0 else ["/", "//", "%2F", "%2f"]
        separator = draw(st.sampled_from(separators))
        detours = [*_DETOURS, "junk/../"] if separator.startswith("/") else _DETOURS
        spelt = "".join([draw(_character(char)) for char in segment])
        out.append(separator + draw(st.sampled_from(detours)) + spelt)
    return "".join(out) + draw(st.sampled_from(["", "/", "//"])) + mark + query
