"""Two egress allowlists intersected: never wider than either, and exact where the entry
language allows it (a wildcard, a name, a port)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from alien.tunnel.forward import HostAllowlist, intersect_allowlists

LABELS = st.sampled_from(["a", "b", "api", "db"])
ZONES = st.sampled_from(["vendor.example", "x.vendor.example", "customer.example"])
PORTS = st.sampled_from([None, 80, 443, 8080])


@st.composite
def entries(draw: st.DrawFn) -> str:
    zone = draw(ZONES)
    host = f"*.{zone}" if draw(st.booleans()) else f"{draw(LABELS)}.{zone}"
    port = draw(PORTS)
    return host if port is None else f"{host}:{port}"


@st.composite
def destinations(draw: st.DrawFn) -> tuple[str, str, int | None]:
    labels = draw(st.lists(LABELS, max_size=2))
    host = ".".join([*labels, draw(ZONES)])
    return draw(st.sampled_from(["http", "https"])), host, draw(PORTS)


def _allows(entries: tuple[str, ...], destination: tuple[str, str, int | None]) -> bool:
    return bool(entries) and HostAllowlist(entries).allows(*destination)


@given(
    st.lists(entries(), min_size=1, max_size=4),
    st.lists(entries(), min_size=1, max_size=4),
    st.lists(destinations(), min_size=1, max_size=8),
)
def test_what_both_allow_on_the_same_port_spelling_the_intersection_allows(
    first, second, reached
) -> None:
    """Exact when every entry names a port, or none does; narrower (never wider) otherwise."""
    both = intersect_allowlists(first, second)
    same_spelling = len({":" in e for e in [*first, *second]}) == 1
    for destination in reached:
        in_both = _allows(tuple(first), destination) and _allows(tuple(second), destination)
        if _allows(both, destination):
            assert in_both
        elif same_spelling:
            assert not in_both


def test_examples() -> None:
    assert intersect_allowlists(["*.vendor.example"], ["api.vendor.example"]) == (
        "api.vendor.example",
    )
    assert intersect_allowlists(["db.internal:5432"], ["*.internal:5432", "x.io"]) == (
        "db.internal:5432",
    )
    assert intersect_allowlists(["*.x.vendor.example"], ["*.vendor.example"]) == (
        "*.x.vendor.example",
    )
    assert intersect_allowlists(["vendor.example"], ["*.vendor.example"]) == ()
    assert intersect_allowlists(["api.example"], ["api.example:8080"]) == ()
