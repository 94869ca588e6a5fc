"""Permission derivation against hand-written expectations, plus the invariants that matter for
the customer: nothing on data, no wildcard actions, updates only on live resources."""

from __future__ import annotations

from typing import Any

import botocore.session
import pytest

import alien
from alien.errors import StackError, ValidationError
from alien.stack import derive_permissions

LAMBDA_MONITOR = [
    "lambda:GetAlias",
    "lambda:GetFunction",
    "lambda:GetFunctionConcurrency",
    "lambda:GetFunctionConfiguration",
    "lambda:GetPolicy",
    "lambda:ListAliases",
    "lambda:ListTags",
    "lambda:ListVersionsByFunction",
]
LAMBDA_UPDATE = [
    "lambda:PublishVersion",
    "lambda:TagResource",
    "lambda:UntagResource",
    "lambda:UpdateAlias",
    "lambda:UpdateFunctionCode",
    "lambda:UpdateFunctionConfiguration",
]
LOGS_MONITOR = ["logs:DescribeLogStreams", "logs:FilterLogEvents", "logs:GetLogEvents"]
S3_MONITOR = [
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
]
SM_MONITOR = [
    "secretsmanager:DescribeSecret",
    "secretsmanager:GetResourcePolicy",
    "secretsmanager:ListSecretVersionIds",
]
DDB_MONITOR = [
    "dynamodb:DescribeContinuousBackups",
    "dynamodb:DescribeTable",
    "dynamodb:DescribeTimeToLive",
    "dynamodb:ListTagsOfResource",
]
SQS_MONITOR = [
    "sqs:GetQueueAttributes",
    "sqs:GetQueueUrl",
    "sqs:ListDeadLetterSourceQueues",
    "sqs:ListQueueTags",
]


def allow(sid: str, actions: list[str], resources: list[str]) -> dict[str, Any]:
    return {"Sid": sid, "Effect": "Allow", "Action": actions, "Resource": resources}


def test_local_permissions(stack: alien.Stack) -> None:
    assert derive_permissions(stack.to_manifest()) == {
        "platform": "local",
        "stack": "my-app",
        "grants": [
            {
                "resource": "function:api",
                "lifecycle": "live",
                "actions": [
                    "read-config",
                    "monitor",
                    "read-logs",
                    "update-code",
                    "update-config",
                    "restart",
                ],
            },
            {
                "resource": "kv:cache",
                "lifecycle": "live",
                "actions": ["read-config", "monitor", "update-config"],
            },
            {
                "resource": "vault:credentials",
                "lifecycle": "frozen",
                "actions": ["read-config", "monitor"],
            },
            {
                "resource": "storage:data",
                "lifecycle": "frozen",
                "actions": ["read-config", "monitor"],
            },
            {
                "resource": "queue:tasks",
                "lifecycle": "live",
                "actions": ["read-config", "monitor", "update-config"],
            },
        ],
    }


def test_aws_policy_for_the_architecture_stack(stack: alien.Stack) -> None:
    fn = ["arn:aws:lambda:*:*:function:my-app-api", "arn:aws:lambda:*:*:function:my-app-api:*"]
    logs = [
        "arn:aws:logs:*:*:log-group:/aws/lambda/my-app-api",
        "arn:aws:logs:*:*:log-group:/aws/lambda/my-app-api:*",
    ]
    table = ["arn:aws:dynamodb:*:*:table/my-app-cache"]
    queue = ["arn:aws:sqs:*:*:my-app-tasks"]
    expected = {
        "Version": "2012-10-17",
        "Statement": [
            allow(
                "FunctionApiMonitor", sorted([*LAMBDA_MONITOR, "lambda:GetFunctionUrlConfig"]), fn
            ),
            allow("FunctionApiUpdate", [*LAMBDA_UPDATE, "lambda:UpdateFunctionUrlConfig"], fn),
            allow("FunctionApiLogsMonitor", LOGS_MONITOR, logs),
            allow("FunctionApiLogsUpdate", ["logs:PutRetentionPolicy"], logs),
            allow("KvCacheMonitor", DDB_MONITOR, table),
            allow(
                "KvCacheUpdate",
                [
                    "dynamodb:TagResource",
                    "dynamodb:UntagResource",
                    "dynamodb:UpdateContinuousBackups",
                    "dynamodb:UpdateTable",
                    "dynamodb:UpdateTimeToLive",
                ],
                table,
            ),
            allow(
                "VaultCredentialsMonitor",
                SM_MONITOR,
                ["arn:aws:secretsmanager:*:*:secret:my-app-credentials-*"],
            ),
            allow("StorageDataMonitor", S3_MONITOR, ["arn:aws:s3:::my-app-data"]),
            allow("QueueTasksMonitor", SQS_MONITOR, queue),
            allow(
                "QueueTasksUpdate",
                ["sqs:SetQueueAttributes", "sqs:TagQueue", "sqs:UntagQueue"],
                queue,
            ),
        ],
    }
    assert derive_permissions(stack.to_manifest(), "aws") == expected


def test_aws_policy_with_prefix_region_account() -> None:
    stack = (
        alien.Stack("shop")
        .add(alien.Storage("uploads"), "live")
        .add(alien.Vault("keys"), "live")
        .add(alien.Kv("sessions"), "frozen")
        .add(alien.Queue("jobs"), "frozen")
        .add(alien.Function("worker").code("worker", "w:app").on_queue("jobs"), "frozen")
    )
    policy = derive_permissions(
        stack.to_manifest(), "aws", prefix="acme-shop", region="eu-west-1", account="123456789012"
    )
    arn = "arn:aws:{}:eu-west-1:123456789012:{}"
    fn = [
        arn.format("lambda", "function:acme-shop-worker"),
        arn.format("lambda", "function:acme-shop-worker:*"),
    ]
    logs = [
        arn.format("logs", "log-group:/aws/lambda/acme-shop-worker"),
        arn.format("logs", "log-group:/aws/lambda/acme-shop-worker:*"),
    ]
    secrets = [arn.format("secretsmanager", "secret:acme-shop-keys-*")]
    assert policy["Statement"] == [
        allow("QueueJobsMonitor", SQS_MONITOR, [arn.format("sqs", "acme-shop-jobs")]),
        allow("VaultKeysMonitor", SM_MONITOR, secrets),
        allow(
            "VaultKeysUpdate",
            ["secretsmanager:TagResource", "secretsmanager:UntagResource"],
            secrets,
        ),
        allow(
            "KvSessionsMonitor", DDB_MONITOR, [arn.format("dynamodb", "table/acme-shop-sessions")]
        ),
        allow("StorageUploadsMonitor", S3_MONITOR, ["arn:aws:s3:::acme-shop-uploads"]),
        allow(
            "StorageUploadsUpdate",
            [
                "s3:PutBucketCORS",
                "s3:PutBucketNotification",
                "s3:PutBucketTagging",
                "s3:PutBucketVersioning",
                "s3:PutEncryptionConfiguration",
                "s3:PutLifecycleConfiguration",
            ],
            ["arn:aws:s3:::acme-shop-uploads"],
        ),
        allow("FunctionWorkerMonitor", LAMBDA_MONITOR, fn),  # private: no function URL actions
        allow("FunctionWorkerLogsMonitor", LOGS_MONITOR, logs),
    ]


DATA_PLANE = {
    "s3:GetObject",
    "s3:PutObject",
    "s3:DeleteObject",
    "s3:ListBucket",
    "s3:PutBucketPolicy",
    "s3:DeleteBucket",
    "secretsmanager:GetSecretValue",
    "secretsmanager:PutSecretValue",
    "secretsmanager:UpdateSecret",
    "secretsmanager:PutResourcePolicy",
    "dynamodb:GetItem",
    "dynamodb:PutItem",
    "dynamodb:Query",
    "dynamodb:Scan",
    "dynamodb:DeleteTable",
    "sqs:ReceiveMessage",
    "sqs:SendMessage",
    "sqs:DeleteMessage",
    "sqs:PurgeQueue",
    "lambda:InvokeFunction",
    "lambda:DeleteFunction",
    "lambda:AddPermission",
}


def _every_kind(lifecycle: str) -> alien.Stack:
    fn = alien.Function("fn").code("fn", "m:a").ingress("public")
    stack = alien.Stack("s").add(fn, lifecycle)
    for resource in (alien.Storage("st"), alien.Vault("v"), alien.Kv("k"), alien.Queue("q")):
        stack.add(resource, lifecycle)
    return stack


@pytest.mark.parametrize("lifecycle", ["frozen", "live"])
def test_aws_invariants(lifecycle: str) -> None:
    policy = derive_permissions(_every_kind(lifecycle).to_manifest(), "aws")
    actions = [a for s in policy["Statement"] for a in s["Action"]]
    assert not any("*" in a or "?" in a for a in actions)
    assert not DATA_PLANE & set(actions)
    assert len({s["Sid"] for s in policy["Statement"]}) == len(policy["Statement"])
    assert all(s["Sid"].isalnum() for s in policy["Statement"])
    updates = [s for s in policy["Statement"] if s["Sid"].endswith("Update")]
    assert bool(updates) == (lifecycle == "live")
    for statement in policy["Statement"]:
        assert all(":s-" in arn or ":::s-" in arn or "/s-" in arn for arn in statement["Resource"])


def test_aws_action_names_are_real_operations() -> None:
    """Outside S3 (whose IAM names differ from its API), IAM actions are API operation names:
    check them against botocore's service models to catch typos."""
    policy = derive_permissions(_every_kind("live").to_manifest(), "aws")
    session = botocore.session.get_session()
    services = {
        "lambda": "lambda",
        "logs": "logs",
        "secretsmanager": "secretsmanager",
        "dynamodb": "dynamodb",
        "sqs": "sqs",
    }
    checked = 0
    for action in (a for s in policy["Statement"] for a in s["Action"]):
        service, operation = action.split(":")
        if service in services:
            assert operation in session.get_service_model(services[service]).operation_names
            checked += 1
    assert checked > 30


def test_sids_stay_unique_when_ids_camel_case_alike() -> None:
    stack = alien.Stack("s").add(alien.Kv("a-1b"), "frozen").add(alien.Kv("a1b"), "frozen")
    sids = [s["Sid"] for s in derive_permissions(stack.to_manifest(), "aws")["Statement"]]
    assert sids == ["KvA1bMonitor", "KvA1bMonitor2"]


def test_aws_refusals() -> None:
    long_prefix = "p" * 60
    stack = alien.Stack("s").add(alien.Storage("data"), "frozen")
    with pytest.raises(ValidationError, match="over the 63 AWS allows") as caught:
        derive_permissions(stack.to_manifest(), "aws", prefix=long_prefix)
    assert caught.value.field == "prefix"
    with pytest.raises(ValidationError) as caught:
        derive_permissions(stack.to_manifest(), "aws", prefix="Bad_Prefix")
    assert caught.value.field == "prefix"
    for kwargs, field in (
        ({"region": "mars"}, "region"),
        ({"account": "12"}, "account"),
        ({"partition": "azure"}, "partition"),
    ):
        with pytest.raises(ValidationError) as caught:
            derive_permissions(stack.to_manifest(), "aws", **kwargs)
        assert caught.value.field == field
    with pytest.raises(ValidationError) as caught:
        derive_permissions(stack.to_manifest(), "gcp")
    assert caught.value.field == "platform"


def test_overlapping_vault_patterns_refused() -> None:
    stack = alien.Stack("s").add(alien.Vault("keys"), "live").add(alien.Vault("keys-old"), "frozen")
    with pytest.raises(StackError, match="overlap on AWS") as caught:
        derive_permissions(stack.to_manifest(), "aws")
    assert caught.value.field == "resources.keys-old"
    assert derive_permissions(stack.to_manifest(), "local")["grants"]


def test_invalid_manifest_is_refused_before_deriving() -> None:
    with pytest.raises(StackError):
        derive_permissions({"manifest_version": 1, "name": "s", "resources": [{"id": "x"}]})
