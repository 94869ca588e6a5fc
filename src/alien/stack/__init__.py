"""The stack model: resources and their lifecycles, the manifest, permission derivation.

Modules, one concept each:

* ``kinds`` — vocabularies: ``ResourceKind``, ``Lifecycle``, ``Ingress``, ``StorageEvent``
* ``rules`` — checks of single values (ids, entrypoints, code paths, env names, cron)
* ``triggers`` — trigger wire models (queue, storage, cron)
* ``spec`` — manifest wire models (``Manifest``, ``FunctionSpec``, ...) and their look-ups
* ``problems`` — collecting problems into one ``StackError``
* ``checks`` / ``codedirs`` — checks across resources / against the app directory
* ``manifest`` — parse untrusted manifests, canonical dump, digest
* ``resources`` / ``stack`` — the builder API used in ``alien_stack.py``
* ``loader`` — running ``alien_stack.py``
* ``permissions`` — what the management identity may do, per platform
"""

from __future__ import annotations

from alien.stack.codedirs import code_dir
from alien.stack.kinds import Ingress, Lifecycle, ResourceKind, StorageEvent
from alien.stack.loader import STACK_FILE, LoadedStack, find_stack_file, load_stack
from alien.stack.manifest import (
    ManifestLike,
    as_manifest,
    dump_manifest,
    manifest_digest,
    manifest_from_dict,
    manifest_from_json,
    validate_manifest,
)
from alien.stack.permissions import derive_permissions
from alien.stack.resources import Function, Kv, Queue, Resource, Storage, Vault
from alien.stack.spec import (
    CodeSpec,
    FunctionConfig,
    FunctionSpec,
    KvSpec,
    Manifest,
    QueueConfig,
    QueueSpec,
    ResourceSpec,
    StorageSpec,
    VaultSpec,
)
from alien.stack.stack import Stack
from alien.stack.triggers import CronTrigger, QueueTrigger, StorageTrigger, Trigger

__all__ = [
    "STACK_FILE",
    "CodeSpec",
    "CronTrigger",
    "Function",
    "FunctionConfig",
    "FunctionSpec",
    "Ingress",
    "Kv",
    "KvSpec",
    "Lifecycle",
    "LoadedStack",
    "Manifest",
    "ManifestLike",
    "Queue",
    "QueueConfig",
    "QueueSpec",
    "QueueTrigger",
    "Resource",
    "ResourceKind",
    "ResourceSpec",
    "Stack",
    "Storage",
    "StorageEvent",
    "StorageSpec",
    "StorageTrigger",
    "Trigger",
    "Vault",
    "VaultSpec",
    "as_manifest",
    "code_dir",
    "derive_permissions",
    "dump_manifest",
    "find_stack_file",
    "load_stack",
    "manifest_digest",
    "manifest_from_dict",
    "manifest_from_json",
    "validate_manifest",
]
