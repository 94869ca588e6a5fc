"""Checks that span resources: unique ids, and links and triggers that point at the right things.

They run on every resource that parsed, against the ids and kinds *declared* in the input (even by
resources that failed to parse for another reason), so one bad resource does not hide problems in
the others.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence

from alien.stack.kinds import BINDABLE_KINDS, ResourceKind
from alien.stack.problems import Problem
from alien.stack.spec import FunctionSpec, ResourceSpec

_BINDABLE = {k.value for k in BINDABLE_KINDS}
_KNOWN = {k.value for k in ResourceKind}


def duplicate_ids(declared_ids: Sequence[str]) -> list[Problem]:
    return [
        Problem(f"resources.{rid}", f"{n} resources have id {rid!r}: ids must be unique in a stack")
        for rid, n in sorted(Counter(declared_ids).items())
        if n > 1
    ]


def _trigger_problems(fn: FunctionSpec, prefix: str, kinds: Mapping[str, str]) -> list[Problem]:
    problems = []
    for trigger in fn.config.triggers:
        target = trigger.target
        if target is None:
            continue
        declared = kinds.get(target)
        if declared is None:
            message = (
                f"{trigger.type} trigger names {target!r}, which is not in the stack: "
                f"add a {trigger.type} named {target!r} to the stack"
            )
        elif declared != trigger.type and declared in _KNOWN:
            message = f"{trigger.type} trigger names {target!r}, which is a {declared}"
        else:
            continue
        problems.append(Problem(f"{prefix}.triggers", message))
    return problems


def _link_problems(fn: FunctionSpec, prefix: str, kinds: Mapping[str, str]) -> list[Problem]:
    problems = []
    for link in sorted(set(fn.config.links) - fn.config.trigger_targets()):
        declared = kinds.get(link)
        if declared is None:
            message = f"link to {link!r}, which is not in the stack: add it or remove the link"
        elif declared in _KNOWN and declared not in _BINDABLE:
            message = (
                f"link to {link!r}, which is a {declared}: functions can link storage, vault, "
                "kv and queue resources only"
            )
        else:
            continue
        problems.append(Problem(f"{prefix}.links", message))
    return problems


def reference_problems(
    parsed: Sequence[tuple[str, ResourceSpec]], kinds: Mapping[str, str]
) -> list[Problem]:
    """Links and triggers of each parsed function, against ``kinds`` (declared id -> kind)."""
    problems: list[Problem] = []
    for prefix, spec in parsed:
        if isinstance(spec, FunctionSpec):
            problems += _trigger_problems(spec, prefix, kinds)
            problems += _link_problems(spec, prefix, kinds)
    return problems
