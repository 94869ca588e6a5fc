"""The environment a debug session's child process runs with, per tool.

Each builder writes what the tool needs into the session's private directory and returns a
``ChildEnv``: variables to set and variables to remove from the user's environment. Removing
matters as much as setting: a leftover ``AWS_PROFILE``, ``AWS_SESSION_TOKEN`` or per-service
``AWS_ENDPOINT_URL_S3`` would send the tool around the proxy or mix in the engineer's own
identity. Config files point into the session directory so the user's own profiles, kubeconfig
and gcloud config can neither interfere nor be touched.
"""

from __future__ import annotations

import base64
import json
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from urllib.parse import quote, urlsplit

from alien.debug.session_dir import SessionDir
from alien.debug.session_keys import SessionKeys

LOOPBACK_NO_PROXY = ("127.0.0.1", "localhost", "::1")
"""Kept away from any corporate HTTP proxy the user has: the session's endpoints live there."""


@dataclass(frozen=True)
class ChildEnv:
    """Changes to apply to a base environment: ``unset`` names and ``unset_prefixes`` are removed,
    then ``set`` is applied, then the ``no_proxy`` hosts are added to the user's own
    ``NO_PROXY``/``no_proxy`` exclusions (both spellings get the union)."""

    set: Mapping[str, str] = field(default_factory=dict)
    unset: frozenset[str] = frozenset()
    unset_prefixes: tuple[str, ...] = ()
    no_proxy: tuple[str, ...] = ()

    def apply(self, base: Mapping[str, str] | None = None) -> dict[str, str]:
        """The child's full environment, from ``base`` (default: this process's environment)."""
        source = os.environ if base is None else base
        env = {
            key: value
            for key, value in source.items()
            if key not in self.unset and not key.startswith(self.unset_prefixes)
        }
        env.update(self.set)
        if self.no_proxy:
            existing = [
                entry.strip()
                for name in ("NO_PROXY", "no_proxy")
                for entry in env.get(name, "").split(",")
                if entry.strip()
            ]
            merged = ",".join(dict.fromkeys([*existing, *self.no_proxy]))
            env["NO_PROXY"] = env["no_proxy"] = merged
        return env

    def __or__(self, other: ChildEnv) -> ChildEnv:
        """Both sets of changes; ``other`` wins where both set a variable."""
        return ChildEnv(
            set={**self.set, **other.set},
            unset=self.unset | other.unset,
            unset_prefixes=self.unset_prefixes + other.unset_prefixes,
            no_proxy=tuple(dict.fromkeys(self.no_proxy + other.no_proxy)),
        )


# ---------------------------------------------------------------------------------------- AWS

AWS_UNSET = frozenset(
    {
        "AWS_PROFILE",
        "AWS_DEFAULT_PROFILE",
        "AWS_SESSION_TOKEN",
        "AWS_SECURITY_TOKEN",
        "AWS_CREDENTIAL_EXPIRATION",
        "AWS_ROLE_ARN",
        "AWS_ROLE_SESSION_NAME",
        "AWS_WEB_IDENTITY_TOKEN_FILE",
        "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
        "AWS_CONTAINER_CREDENTIALS_FULL_URI",
        "AWS_CONTAINER_AUTHORIZATION_TOKEN",
        "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE",
        "AWS_IGNORE_CONFIGURED_ENDPOINT_URLS",
        "AWS_USE_FIPS_ENDPOINT",
        "AWS_USE_DUALSTACK_ENDPOINT",
        "AWS_S3_USE_ARN_REGION",
        "AWS_CA_BUNDLE",
        "AWS_SDK_LOAD_CONFIG",
        "AWS_SHARED_CONFIG_FILE",
    }
)
# Per-service endpoint variables (AWS_ENDPOINT_URL_S3...) would bypass the proxy.
AWS_UNSET_PREFIXES = ("AWS_ENDPOINT_URL_",)

# aws CLI v1 pins these commands to a legacy AWS hostname in some regions unless --endpoint-url is
# given on the command line; AWS_ENDPOINT_URL alone is ignored for them.
AWS_CLI_V1_PINNED_COMMANDS = frozenset({"sqs", "emr", "rds", "docdb", "neptune", "health"})


def aws_env(
    files: SessionDir,
    *,
    endpoint_url: str,
    region: str,
    keys: SessionKeys,
    no_proxy: Sequence[str] = LOOPBACK_NO_PROXY,
) -> ChildEnv:
    """Environment for the ``aws`` CLI and AWS SDKs: every call goes to the session proxy with the
    session's dummy keys; the user's profiles and credential sources are cut off. ``no_proxy``
    keeps the proxy itself away from any HTTP proxy (pass its ``host:port`` when loopback
    destinations must go through the session's own forward proxy, as in the pull model)."""
    config = files.write_text(
        "aws-config",
        # aws CLI v1 presigns with SigV2 unless told otherwise; the proxy verifies SigV4 only.
        f"[default]\nregion = {region}\noutput = json\n"
        "s3 =\n    addressing_style = path\n    signature_version = s3v4\n",
    )
    credentials = files.write_text(
        "aws-credentials",
        "[default]\n"
        f"aws_access_key_id = {keys.aws_access_key_id}\n"
        f"aws_secret_access_key = {keys.aws_secret_access_key}\n",
    )
    env = ChildEnv(
        set={
            "AWS_ENDPOINT_URL": endpoint_url,
            "AWS_ACCESS_KEY_ID": keys.aws_access_key_id,
            "AWS_SECRET_ACCESS_KEY": keys.aws_secret_access_key,
            "AWS_REGION": region,
            "AWS_DEFAULT_REGION": region,
            "AWS_CONFIG_FILE": str(config),
            "AWS_SHARED_CREDENTIALS_FILE": str(credentials),
            "AWS_EC2_METADATA_DISABLED": "true",
            "AWS_PAGER": "",
        },
        unset=AWS_UNSET,
        unset_prefixes=AWS_UNSET_PREFIXES,
    )
    return env | ChildEnv(no_proxy=tuple(no_proxy))


def aws_command(argv: Sequence[str], endpoint_url: str) -> list[str]:
    """``argv`` with ``--endpoint-url`` added when it runs the ``aws`` CLI.

    Harmless for every command (it names the same proxy as ``AWS_ENDPOINT_URL``) and required for
    the commands aws CLI v1 pins to legacy hostnames (``AWS_CLI_V1_PINNED_COMMANDS``). Commands
    started indirectly (from a shell or a script) do not get it: for those few services v1 needs an
    explicit ``--endpoint-url "$AWS_ENDPOINT_URL"``.
    """
    args = list(argv)
    if not args or os.path.basename(args[0]) != "aws":
        return args
    if any(a == "--endpoint-url" or a.startswith("--endpoint-url=") for a in args[1:]):
        return args
    return [args[0], "--endpoint-url", endpoint_url, *args[1:]]


# ------------------------------------------------------------------------------------- gcloud

DEFAULT_GCLOUD_APIS = (
    "cloudresourcemanager",
    "compute",
    "container",
    "iam",
    "logging",
    "pubsub",
    "run",
    "secretmanager",
    "serviceusage",
    "storage",
)
"""Pointed at the session's endpoint even when not offered: a call the agent refuses is audited,
one sent past the endpoint would reach Google with the session's token."""


def gcloud_env(
    files: SessionDir,
    *,
    endpoint_url: str,
    project: str,
    keys: SessionKeys,
    apis: Iterable[str] = DEFAULT_GCLOUD_APIS,
    ca_file: str | None = None,
    no_proxy: Sequence[str] = LOOPBACK_NO_PROXY,
) -> ChildEnv:
    """Environment for ``gcloud``: a fresh config dir, the session token as the access token, and
    every listed API pointed at ``{endpoint_url}/{api}/``. ``no_proxy`` as for :func:`aws_env`.

    gcloud sends storage uploads to ``/upload/storage/v1/...`` and
    ``/resumable/upload/storage/v1/...`` on the override's host, dropping the path prefix: the
    proxy has to route those paths by pattern.
    """
    token_file = files.write_text("gcloud-token", keys.bearer_token)
    config_dir = files.subdir("gcloud")
    base = endpoint_url.rstrip("/")
    values = {
        "CLOUDSDK_CONFIG": str(config_dir),
        "CLOUDSDK_CORE_PROJECT": project,
        "CLOUDSDK_AUTH_ACCESS_TOKEN_FILE": str(token_file),
        "CLOUDSDK_CORE_DISABLE_PROMPTS": "1",
        "CLOUDSDK_CORE_DISABLE_USAGE_REPORTING": "true",
        "CLOUDSDK_COMPONENT_MANAGER_DISABLE_UPDATE_CHECK": "true",
    }
    for api in apis:
        values[f"CLOUDSDK_API_ENDPOINT_OVERRIDES_{api.upper()}"] = f"{base}/{quote(api)}/"
    if ca_file is not None:
        values["CLOUDSDK_CORE_CUSTOM_CA_CERTS_FILE"] = ca_file
    return ChildEnv(
        set=values,
        unset=frozenset({"GOOGLE_APPLICATION_CREDENTIALS", "CLOUDSDK_AUTH_ACCESS_TOKEN"}),
        unset_prefixes=("CLOUDSDK_API_ENDPOINT_OVERRIDES_", "CLOUDSDK_PROXY_"),
    ) | ChildEnv(no_proxy=tuple(no_proxy))


# -------------------------------------------------------------------------------------- azure


def azure_storage_env(
    files: SessionDir,
    *,
    endpoint_url: str,
    account: str,
    keys: SessionKeys,
    no_proxy: Sequence[str] = LOOPBACK_NO_PROXY,
) -> ChildEnv:
    """Environment for ``az storage``: a connection string naming the account, with the
    session's dummy key and the loopback endpoint as its blob endpoint, and a fresh config dir
    (the engineer's ``az login`` is not the deployment's identity, and its telemetry stays off).
    ``no_proxy`` as for :func:`aws_env`."""
    connection = (
        f"DefaultEndpointsProtocol=http;AccountName={account};"
        f"AccountKey={keys.azure_storage_key};BlobEndpoint={endpoint_url.rstrip('/')};"
    )
    values = {
        "AZURE_STORAGE_CONNECTION_STRING": connection,
        "AZURE_CONFIG_DIR": str(files.subdir("azure")),
        "AZURE_CORE_COLLECT_TELEMETRY": "no",
        "AZURE_CORE_SURVEY_MESSAGE": "no",
        "AZURE_CORE_NO_COLOR": "true",
    }
    return ChildEnv(
        set=values,
        unset=frozenset(
            {
                "AZURE_STORAGE_ACCOUNT",
                "AZURE_STORAGE_KEY",
                "AZURE_STORAGE_SAS_TOKEN",
                "AZURE_STORAGE_AUTH_MODE",
                "AZURE_STORAGE_SERVICE_ENDPOINT",
            }
        ),
    ) | ChildEnv(no_proxy=tuple(no_proxy))


# ------------------------------------------------------------------------------------ kubectl


def kubeconfig(*, server_url: str, ca_pem: bytes, token: str, namespace: str | None) -> dict:
    """A one-cluster kubeconfig. kubectl sends the bearer token only over HTTPS, hence the
    session certificate as ``certificate-authority-data``."""
    context: dict[str, str] = {"cluster": "alien-debug", "user": "alien-debug"}
    if namespace:
        context["namespace"] = namespace
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": "alien-debug",
                "cluster": {
                    "server": server_url,
                    "certificate-authority-data": base64.b64encode(ca_pem).decode(),
                },
            }
        ],
        "users": [{"name": "alien-debug", "user": {"token": token}}],
        "contexts": [{"name": "alien-debug", "context": context}],
        "current-context": "alien-debug",
        "preferences": {},
    }


def kubectl_env(
    files: SessionDir,
    *,
    server_url: str,
    ca_pem: bytes,
    keys: SessionKeys,
    namespace: str | None = None,
    no_proxy: Sequence[str] = LOOPBACK_NO_PROXY,
) -> ChildEnv:
    """Environment for ``kubectl``: a session kubeconfig (JSON is valid YAML) and a session
    discovery cache, so nothing lands in ``~/.kube``. ``no_proxy`` as for :func:`aws_env`."""
    if urlsplit(server_url).scheme != "https":
        raise ValueError("kubectl only sends its bearer token over https")
    config = files.write_text(
        "kubeconfig",
        json.dumps(
            kubeconfig(
                server_url=server_url, ca_pem=ca_pem, token=keys.bearer_token, namespace=namespace
            ),
            indent=2,
        ),
    )
    cache = files.subdir("kube-cache")
    return ChildEnv(
        set={"KUBECONFIG": str(config), "KUBECACHEDIR": str(cache)},
        unset=frozenset({"KUBERNETES_SERVICE_HOST", "KUBERNETES_SERVICE_PORT"}),
    ) | ChildEnv(no_proxy=tuple(no_proxy))


# --------------------------------------------------------------------------------- plain HTTP


def http_proxy_env(
    *,
    proxy_host: str,
    proxy_port: int,
    keys: SessionKeys,
    bypass: Sequence[str] = LOOPBACK_NO_PROXY,
) -> ChildEnv:
    """Environment for plain HTTP clients (curl, requests, ...): everything but ``bypass`` goes
    through the session proxy, authenticating with the session token as Basic credentials
    (``Proxy-Authorization``), which the proxy's bearer authenticator accepts.

    The user's own ``NO_PROXY`` exclusions are replaced, not extended: a host they exclude would
    otherwise be reached from the engineer's machine instead of from inside the deployment. In
    the pull model loopback addresses mean the agent's machine, so ``bypass`` then names only the
    session's own local endpoints (``127.0.0.1:PORT``: curl ignores entries with a port, Python
    clients honour them).
    """
    url = f"http://alien:{quote(keys.bearer_token, safe='')}@{proxy_host}:{proxy_port}"
    excluded = ",".join(bypass)
    values = {name: url for name in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy")}
    values |= {"NO_PROXY": excluded, "no_proxy": excluded}
    return ChildEnv(set=values, unset=frozenset({"ALL_PROXY", "all_proxy"}))
