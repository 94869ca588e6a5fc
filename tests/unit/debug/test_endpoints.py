"""The endpoint allowlist: one upstream per allowed request, a readable refusal otherwise."""

from __future__ import annotations

import pytest

from alien.errors import Forbidden, ValidationError
from alien.platforms.aws.endpoints import AwsEndpointPolicy, botocore_endpoint, route_request

POLICY = AwsEndpointPolicy.create("eu-west-1", ["s3", "sts", "iam", "dynamodb"])


def test_regional_service_goes_to_its_regional_endpoint() -> None:
    route = route_request(POLICY, "s3", "eu-west-1")
    assert route.base_url == "https://s3.eu-west-1.amazonaws.com"
    assert (route.service, route.signing_region) == ("s3", "eu-west-1")
    assert (
        route_request(POLICY, "sts", "eu-west-1").base_url == "https://sts.eu-west-1.amazonaws.com"
    )


def test_global_service_is_reachable_from_any_caller_region_and_signed_for_us_east_1() -> None:
    route = route_request(POLICY, "iam", "ap-south-1")
    assert route.base_url == "https://iam.amazonaws.com"
    assert route.signing_region == "us-east-1"


def test_service_not_allowed_is_refused_with_the_allowed_list() -> None:
    with pytest.raises(Forbidden) as refused:
        route_request(POLICY, "lambda", "eu-west-1")
    assert refused.value.field == "service"
    assert refused.value.details["aws_code"] == "AccessDenied"
    assert "dynamodb, iam, s3, sts" in refused.value.message


def test_other_region_is_refused() -> None:
    with pytest.raises(Forbidden, match="outside this deployment") as refused:
        route_request(POLICY, "s3", "us-west-2")
    assert refused.value.field == "region"


def test_override_replaces_every_host_but_not_the_rules() -> None:
    policy = AwsEndpointPolicy.create(
        "eu-west-1",
        ["s3", "iam"],
        endpoint_override="http://127.0.0.1:5000/",
        service_overrides={"s3": "http://127.0.0.1:6000"},
    )
    assert route_request(policy, "iam", "eu-west-1").base_url == "http://127.0.0.1:5000"
    assert route_request(policy, "iam", "eu-west-1").signing_region == "us-east-1"
    assert route_request(policy, "s3", "eu-west-1").base_url == "http://127.0.0.1:6000"
    with pytest.raises(Forbidden):
        route_request(policy, "sts", "eu-west-1")


def test_policy_validation() -> None:
    with pytest.raises(ValidationError) as bad_region:
        AwsEndpointPolicy.create("EU West", ["s3"])
    assert bad_region.value.field == "region"
    with pytest.raises(ValidationError) as bad_service:
        AwsEndpointPolicy.create("eu-west-1", ["S3!"])
    assert bad_service.value.field == "allowed_services"
    with pytest.raises(ValidationError) as bad_override:
        AwsEndpointPolicy.create("eu-west-1", ["s3"], endpoint_override="ftp://x")
    assert bad_override.value.field == "endpoint_override"


def test_unknown_service_falls_back_to_the_standard_hostname() -> None:
    info = botocore_endpoint("brand-new-service", "eu-west-1")
    assert info.hostname == "brand-new-service.eu-west-1.amazonaws.com"
    assert not info.is_global
