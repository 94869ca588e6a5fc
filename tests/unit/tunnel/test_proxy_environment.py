"""The proxy variables are read as ``urllib.request`` reads them (the stdlib is the oracle here:
``proxy_connect`` reads them itself only to stay off that module's import cost)."""

from __future__ import annotations

import os
import urllib.request

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from alien.tunnel.proxy_connect import _bypassed, environment_proxies, proxy_for

_LABELS = st.sampled_from(["localhost", "example", "com", "internal", "a", "10", "0", "1"])
_HOSTS = st.builds(
    lambda labels, port, upper: (
        (".".join(labels) + (f":{port}" if port else ""))
        if not upper
        else (".".join(labels) + (f":{port}" if port else "")).upper()
    ),
    st.lists(_LABELS, min_size=1, max_size=4),
    st.one_of(st.none(), st.sampled_from([80, 443, 8080])),
    st.booleans(),
)
_ENTRIES = st.one_of(_HOSTS, st.sampled_from(["*", " * ", "", " ", ".example.com", ".com", "::1"]))
_NAMES = st.sampled_from(["http", "https", "all", "no", "ws", "wss", "ftp"])
_SPELLINGS = st.builds(
    lambda name, upper: f"{name}_proxy".upper() if upper else f"{name}_proxy", _NAMES, st.booleans()
)


@given(host=_HOSTS, entries=st.lists(_ENTRIES, max_size=4), spaced=st.booleans())
@example(host="localhost", entries=[" * "], spaced=False)  # only a bare "*" means everything
@example(host="a.example.com:443", entries=["example.com"], spaced=False)
def test_no_proxy_matches_the_standard_library(host: str, entries: list[str], spaced: bool) -> None:
    no_proxy = (", " if spaced else ",").join(entries)
    expected = bool(urllib.request.proxy_bypass_environment(host, {"no": no_proxy}))
    assert _bypassed(host, no_proxy) is expected


@given(
    variables=st.dictionaries(_SPELLINGS, st.sampled_from(["", "http://p:3128", "http://q:8080"])),
    cgi=st.booleans(),
)
def test_the_variables_are_read_as_the_standard_library_reads_them(
    variables: dict[str, str], cgi: bool
) -> None:
    with pytest.MonkeyPatch.context() as env:
        _only(env, **variables)
        env.delenv("REQUEST_METHOD", raising=False)
        if cgi:
            env.setenv("REQUEST_METHOD", "GET")
        assert environment_proxies() == urllib.request.getproxies_environment()


def _only(monkeypatch: pytest.MonkeyPatch, **variables: str) -> None:
    for name in [name for name in os.environ if name.lower().endswith("_proxy")]:
        monkeypatch.delenv(name)
    for name, value in variables.items():
        monkeypatch.setenv(name, value)


def test_a_websocket_takes_its_own_variable_first_then_https(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _only(monkeypatch, wss_proxy="http://ws:1", HTTPS_PROXY="http://tls:2", http_proxy="http://h:3")
    assert proxy_for(True, "manager.example") == "http://ws:1"
    monkeypatch.delenv("wss_proxy")
    assert proxy_for(True, "manager.example") == "http://tls:2"
    assert proxy_for(False, "manager.example") == "http://tls:2"  # ws: then https, then http


def test_a_plain_call_takes_https_or_http_then_all(monkeypatch: pytest.MonkeyPatch) -> None:
    _only(monkeypatch, HTTPS_PROXY="http://tls:2", ALL_PROXY="http://any:4")
    assert proxy_for(True, "m.example", websocket=False) == "http://tls:2"
    assert proxy_for(False, "m.example", websocket=False) == "http://any:4"


def test_no_proxy_and_no_variables_mean_direct(monkeypatch: pytest.MonkeyPatch) -> None:
    _only(monkeypatch, HTTPS_PROXY="http://tls:2", NO_PROXY="localhost,.internal")
    assert proxy_for(True, "localhost") is None
    assert proxy_for(True, "manager.internal") is None
    assert proxy_for(True, "manager.example") == "http://tls:2"
    _only(monkeypatch)
    assert proxy_for(True, "manager.example") is None
