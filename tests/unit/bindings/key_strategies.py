"""Hypothesis strategies for keys, biased towards the characters that matter for paths."""

from __future__ import annotations

from hypothesis import strategies as st

_TRICKY = ["/", ".", "..", "\\", "\x00", "\n", "a", "é", "~", ":"]

path_text = st.lists(st.sampled_from(_TRICKY) | st.characters(), max_size=40).map(
    "".join
) | st.text(max_size=1100)
