"""The agent's debug offer: what the agent writes the CLI reads back; anything else is a
``ValidationError`` naming the field, never another exception."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from alien.errors import ValidationError
from alien.protocol.debug_offer import (
    MAX_OFFER_BYTES,
    AwsOffer,
    AzureOffer,
    DebugOffer,
    GcpOffer,
    HttpOffer,
    KubernetesOffer,
    azure_blob_account_of,
    google_api_of,
    parse_offer,
)
from support.imports import imports_module

names = st.from_regex(r"[a-z0-9][a-z0-9-]{0,62}", fullmatch=True)
hosts = st.text(min_size=1, max_size=260)
offers = st.builds(
    DebugOffer,
    aws=st.none() | st.builds(AwsOffer, region=names, services=st.tuples(names, names)),
    http=st.none() | st.builds(HttpOffer, allow=st.lists(hosts, max_size=5).map(tuple)),
    gcp=st.none()
    | st.builds(
        GcpOffer,
        project=st.from_regex(r"[a-z0-9][a-z0-9.:-]{0,99}", fullmatch=True),
        apis=st.lists(names, max_size=4).map(tuple),
    ),
    kubernetes=st.none() | st.builds(KubernetesOffer, namespace=names),
    azure=st.none()
    | st.builds(AzureOffer, account=st.from_regex(r"[a-z0-9]{3,24}", fullmatch=True)),
)


@given(offers)
def test_what_the_agent_writes_reads_back_equal(offer: DebugOffer) -> None:
    assert parse_offer(offer.to_json()) == offer


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=12,
)
shaped = st.fixed_dictionaries(
    {},
    optional={
        "aws": json_values
        | st.fixed_dictionaries({"region": json_values, "services": json_values}),
        "http": json_values | st.fixed_dictionaries({"allow": json_values}),
        "gcp": json_values | st.fixed_dictionaries({"project": json_values, "apis": json_values}),
        "kubernetes": json_values | st.fixed_dictionaries({"namespace": json_values}),
        "azure": json_values | st.fixed_dictionaries({"account": json_values}),
    },
)


@given(st.binary(max_size=200) | shaped.map(lambda d: json.dumps(d).encode()))
def test_anything_else_is_a_validation_error_or_an_offer(data: bytes) -> None:
    try:
        offer = parse_offer(data)
    except ValidationError as exc:
        assert exc.field
    else:
        assert isinstance(offer, DebugOffer)


@pytest.mark.parametrize(
    ("document", "field"),
    [
        ([], "offer"),
        ({"aws": {"region": "eu-west-1", "services": ["s3"]}, "extra": 1}, "offer.extra"),
        ({"aws": {"region": "eu-west-1"}}, "aws.services"),
        ({"aws": {"region": "EU", "services": []}}, "aws.region"),
        ({"aws": {"region": "eu-west-1", "services": ["s3", "S 3"]}}, "aws.services.1"),
        ({"aws": {"region": "eu-west-1", "services": "s3"}}, "aws.services"),
        ({"aws": {"region": 1, "services": []}}, "aws.region"),
        ({"http": {"allow": [""]}}, "http.allow.0"),
        ({"http": {"allow": ["x" * 261]}}, "http.allow.0"),
        ({"http": {"allow": ["a"], "deny": []}}, "http.deny"),
        ({"http": "everything"}, "http"),
        ({"azure": {}}, "azure.account"),
        ({"azure": {"account": "Acme"}}, "azure.account"),
        ({"azure": {"account": "ab"}}, "azure.account"),
        ({"azure": {"account": "acme", "key": "k"}}, "azure.key"),
    ],
)
def test_a_bad_offer_names_its_field(document: object, field: str) -> None:
    with pytest.raises(ValidationError) as caught:
        parse_offer(json.dumps(document).encode())
    assert caught.value.field == field


def test_an_oversized_or_non_json_offer_is_refused() -> None:
    with pytest.raises(ValidationError, match="bytes"):
        parse_offer(b" " * (MAX_OFFER_BYTES + 1))
    with pytest.raises(ValidationError, match="not JSON"):
        parse_offer(b"{")


def test_an_empty_offer_offers_nothing() -> None:
    assert parse_offer(b"{}") == DebugOffer()
    assert parse_offer(b'{"aws": null, "http": null}') == DebugOffer()


def test_reading_an_offer_loads_no_pydantic() -> None:
    """The reason this module exists: the CLI reads the offer on its set-up's critical path."""
    code = "from alien.protocol.debug_offer import parse_offer; parse_offer(b'{}')"
    assert not imports_module(code, "pydantic")


@pytest.mark.parametrize(
    ("url", "api"),
    [
        (("https", "pubsub.googleapis.com", None), "pubsub"),
        (("https", "storage.googleapis.com", 443), "storage"),
        (("http", "pubsub.googleapis.com", None), None),  # Google APIs are https only
        (("https", "pubsub.googleapis.com", 8443), None),
        (("https", "googleapis.com", None), None),
        (("https", "a.b.googleapis.com", None), None),
        (("https", "pubsub.googleapis.com.evil.example", None), None),
    ],
)
def test_google_api_of_names_only_first_party_api_hosts(
    url: tuple[str, str, int | None], api: str | None
) -> None:
    assert google_api_of(*url) == api


def test_channels_not_offered_are_left_out_of_what_the_agent_writes() -> None:
    """A CLI older than a channel refuses a key it does not know, even one set to null: an agent
    that does not offer the channel must not name it."""
    document = json.loads(DebugOffer(kubernetes=KubernetesOffer(namespace="apps")).to_json())
    assert document == {"kubernetes": {"namespace": "apps"}}


@pytest.mark.parametrize(
    ("url", "account"),
    [
        (("https", "acme.blob.core.windows.net", None), "acme"),
        (("https", "acme01.blob.core.windows.net", 443), "acme01"),
        (("http", "acme.blob.core.windows.net", None), None),
        (("https", "acme.blob.core.windows.net", 8443), None),
        (("https", "Acme.blob.core.windows.net", None), None),
        (("https", "a.b.blob.core.windows.net", None), None),
        (("https", "acme.queue.core.windows.net", None), None),
        (("https", "acme.blob.core.windows.net.evil.example", None), None),
    ],
)
def test_azure_blob_account_of_names_only_public_blob_hosts(
    url: tuple[str, str, int | None], account: str | None
) -> None:
    assert azure_blob_account_of(*url) == account


def test_a_bad_project_is_refused_naming_the_field() -> None:
    with pytest.raises(ValidationError) as refused:
        parse_offer(b'{"gcp": {"project": "Bad Project", "apis": ["pubsub"]}}')
    assert refused.value.field == "gcp.project"
