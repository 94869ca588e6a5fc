"""Management permissions on AWS: an IAM policy document scoped to one stack's resources.

Each resource ``<id>`` of the stack is the AWS resource named ``<prefix>-<id>`` (the prefix
defaults to the stack name): storage → S3 bucket, vault → Secrets Manager secrets named
``<prefix>-<id>-…`` (a vault holds several; Secrets Manager also appends a random suffix), kv →
DynamoDB table, queue → SQS queue, function → Lambda function and its log group
``/aws/lambda/<prefix>-<id>``.

What is granted (``levels.py``): *monitor* actions (Describe/Get…Configuration/List, tag reads,
the function's logs) on every resource, *update* actions (configuration, code, tags) only on live
ones. Never granted: data-plane actions (reading or writing objects, secret values, items,
messages; invoking functions), deleting resources, and writing resource policies
(``s3:PutBucketPolicy``, ``secretsmanager:PutResourcePolicy``), because a policy write would let
the identity grant itself the data access it is denied here. Known limit of IAM:
``sqs:SetQueueAttributes`` (the only way to change a queue's settings) also covers the queue's
``Policy`` attribute. No action contains a wildcard; ARNs use ``*`` only for region and account
unless they are given, and for the suffixes AWS itself appends.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from alien.errors import StackError, ValidationError
from alien.stack.kinds import Ingress, ResourceKind
from alien.stack.permissions.levels import MONITOR, UPDATE, levels
from alien.stack.rules import check_resource_id
from alien.stack.spec import FunctionSpec, Manifest, ResourceSpec

POLICY_VERSION = "2012-10-17"
PARTITIONS = ("aws", "aws-cn", "aws-us-gov")
_REGION = re.compile(r"[a-z]{2}(-[a-z]+)+-\d{1,2}")
_ACCOUNT = re.compile(r"\d{12}")


@dataclass(frozen=True)
class AwsScope:
    """Where the stack lives: ``*`` for region/account matches any (the default)."""

    partition: str = "aws"
    region: str = "*"
    account: str = "*"

    def __post_init__(self) -> None:
        if self.partition not in PARTITIONS:
            raise ValidationError(
                f"unknown AWS partition {self.partition!r}: use one of {', '.join(PARTITIONS)}",
                field="partition",
            )
        if self.region != "*" and not _REGION.fullmatch(self.region):
            raise ValidationError(
                f"{self.region!r} is not an AWS region (e.g. eu-west-1)", field="region"
            )
        if self.account != "*" and not _ACCOUNT.fullmatch(self.account):
            raise ValidationError("an AWS account id is 12 digits", field="account")

    def arn(self, service: str, resource: str) -> str:
        return f"arn:{self.partition}:{service}:{self.region}:{self.account}:{resource}"


@dataclass(frozen=True)
class ServiceRule:
    """The actions one AWS service grants on the AWS resource(s) behind one stack resource."""

    sid: str  # appended to the resource's Sid stem; "" for the main service
    monitor: tuple[str, ...]
    update: tuple[str, ...]
    arns: Callable[[AwsScope, str], list[str]]
    #: Extra actions for functions with public ingress (their function URL).
    public: dict[str, tuple[str, ...]] = field(default_factory=dict)

    def actions(self, level: str, spec: ResourceSpec) -> list[str]:
        chosen = list(self.monitor if level == MONITOR else self.update)
        if isinstance(spec, FunctionSpec) and spec.config.ingress == Ingress.PUBLIC:
            chosen += self.public.get(level, ())
        return sorted(chosen)


RULES: dict[ResourceKind, tuple[ServiceRule, ...]] = {
    ResourceKind.STORAGE: (
        ServiceRule(
            sid="",
            monitor=(
                "s3:GetBucketCORS",
                "s3:GetBucketLocation",
                "s3:GetBucketLogging",
                "s3:GetBucketNotification",
                "s3:GetBucketOwnershipControls",
                "s3:GetBucketPolicy",
                "s3:GetBucketPolicyStatus",
                "s3:GetBucketPublicAccessBlock",
                "s3:GetBucketTagging",
                "s3:GetBucketVersioning",
                "s3:GetEncryptionConfiguration",
                "s3:GetLifecycleConfiguration",
            ),
            update=(
                "s3:PutBucketCORS",
                "s3:PutBucketNotification",
                "s3:PutBucketTagging",
                "s3:PutBucketVersioning",
                "s3:PutEncryptionConfiguration",
                "s3:PutLifecycleConfiguration",
            ),
            # Bucket-level only: no object actions are granted, so no ``<bucket>/*`` ARN.
            arns=lambda s, name: [f"arn:{s.partition}:s3:::{name}"],
        ),
    ),
    ResourceKind.VAULT: (
        ServiceRule(
            sid="",
            monitor=(
                "secretsmanager:DescribeSecret",
                "secretsmanager:GetResourcePolicy",
                "secretsmanager:ListSecretVersionIds",
            ),
            update=("secretsmanager:TagResource", "secretsmanager:UntagResource"),
            arns=lambda s, name: [s.arn("secretsmanager", f"secret:{name}-*")],
        ),
    ),
    ResourceKind.KV: (
        ServiceRule(
            sid="",
            monitor=(
                "dynamodb:DescribeContinuousBackups",
                "dynamodb:DescribeTable",
                "dynamodb:DescribeTimeToLive",
                "dynamodb:ListTagsOfResource",
            ),
            update=(
                "dynamodb:TagResource",
                "dynamodb:UntagResource",
                "dynamodb:UpdateContinuousBackups",
                "dynamodb:UpdateTable",
                "dynamodb:UpdateTimeToLive",
            ),
            arns=lambda s, name: [s.arn("dynamodb", f"table/{name}")],
        ),
    ),
    ResourceKind.QUEUE: (
        ServiceRule(
            sid="",
            monitor=(
                "sqs:GetQueueAttributes",
                "sqs:GetQueueUrl",
                "sqs:ListDeadLetterSourceQueues",
                "sqs:ListQueueTags",
            ),
            update=("sqs:SetQueueAttributes", "sqs:TagQueue", "sqs:UntagQueue"),
            arns=lambda s, name: [s.arn("sqs", name)],
        ),
    ),
    ResourceKind.FUNCTION: (
        ServiceRule(
            sid="",
            monitor=(
                "lambda:GetAlias",
                "lambda:GetFunction",
                "lambda:GetFunctionConcurrency",
                "lambda:GetFunctionConfiguration",
                "lambda:GetPolicy",
                "lambda:ListAliases",
                "lambda:ListTags",
                "lambda:ListVersionsByFunction",
            ),
            update=(
                "lambda:PublishVersion",
                "lambda:TagResource",
                "lambda:UntagResource",
                "lambda:UpdateAlias",
                "lambda:UpdateFunctionCode",
                "lambda:UpdateFunctionConfiguration",
            ),
            # The function, and its versions and aliases (``name:qualifier``).
            arns=lambda s, name: [
                s.arn("lambda", f"function:{name}"),
                s.arn("lambda", f"function:{name}:*"),
            ],
            public={
                MONITOR: ("lambda:GetFunctionUrlConfig",),
                UPDATE: ("lambda:UpdateFunctionUrlConfig",),
            },
        ),
        ServiceRule(
            sid="Logs",
            monitor=("logs:DescribeLogStreams", "logs:FilterLogEvents", "logs:GetLogEvents"),
            update=("logs:PutRetentionPolicy",),
            # The log group, and its log streams (``group:log-stream:…``).
            arns=lambda s, name: [
                s.arn("logs", f"log-group:/aws/lambda/{name}"),
                s.arn("logs", f"log-group:/aws/lambda/{name}:*"),
            ],
        ),
    ),
}

#: AWS name length limits for ``<prefix>-<id>``.
MAX_NAME = {
    ResourceKind.STORAGE: 63,
    ResourceKind.VAULT: 512,
    ResourceKind.KV: 255,
    ResourceKind.QUEUE: 80,
    ResourceKind.FUNCTION: 64,
}
_LEVEL_SID = {MONITOR: "Monitor", UPDATE: "Update"}


def _camel(text: str) -> str:
    return "".join(part[:1].upper() + part[1:] for part in text.split("-"))


def _check_names(manifest: Manifest, prefix: str) -> None:
    for spec in manifest.resources:
        name = f"{prefix}-{spec.id}"
        if len(name) > MAX_NAME[spec.kind]:
            raise ValidationError(
                f"AWS name {name!r} for {spec.label} is {len(name)} characters, over the "
                f"{MAX_NAME[spec.kind]} AWS allows: use a shorter prefix",
                field="prefix",
            )
    vaults = sorted(spec.id for spec in manifest.of_kind(ResourceKind.VAULT))
    for short in vaults:
        for long in vaults:
            if long.startswith(f"{short}-"):
                raise StackError(
                    f"vault ids {short!r} and {long!r} overlap on AWS: the secrets of "
                    f"{long!r} would match {short!r}'s pattern '{prefix}-{short}-*'; rename one",
                    field=f"resources.{long}",
                )


def aws_policy(
    manifest: Manifest, prefix: str | None = None, scope: AwsScope | None = None
) -> dict[str, Any]:
    """The IAM policy document for the stack's management identity."""
    prefix = manifest.name if prefix is None else prefix
    try:
        check_resource_id(prefix)
    except ValueError as exc:
        raise ValidationError(f"prefix {exc}", field="prefix") from None
    scope = scope or AwsScope()
    _check_names(manifest, prefix)
    statements: list[dict[str, Any]] = []
    used: set[str] = set()
    for spec in manifest.resources:
        name = f"{prefix}-{spec.id}"
        for rule in RULES[spec.kind]:
            for level in levels(spec.lifecycle):
                sid = stem = f"{_camel(spec.kind)}{_camel(spec.id)}{rule.sid}{_LEVEL_SID[level]}"
                n = 1
                while sid in used:  # ids like "a-1b" and "a1b" camel-case alike
                    n += 1
                    sid = f"{stem}{n}"
                used.add(sid)
                statements.append(
                    {
                        "Sid": sid,
                        "Effect": "Allow",
                        "Action": rule.actions(level, spec),
                        "Resource": rule.arns(scope, name),
                    }
                )
    return {"Version": POLICY_VERSION, "Statement": statements}
