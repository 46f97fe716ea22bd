"""Upgrade notes from a comparison of two templates: what updating a stack from one to the other changes.

Both templates are read as CloudFormation (:mod:`rotation_release.cfn`) and reduced to what an update
acts on: the resources (logical id, type, the condition that creates them and whether it holds with the
default parameters), the parameters (type, default, allowed values and pattern, range), the outputs and
their export names, every grant of every role (action, resource, condition) and each function's
environment variables. Descriptions are left out: they change nothing a stack runs. The differences are
rendered as the generated "upgrading" block of docs/deploy.md, so the notes come from the templates, not
from memory.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rotation_release.cfn import condition_holds, load, parameter_values, resources_of_type
from rotation_release.iam import describe_resource, role_statements, roles
from rotation_release.project import REPO_ROOT

# template.yaml of version 0.1.0 (CHANGELOG.md: 2026-11-25, never tagged), as committed then.
BASELINE_VERSION = "0.1.0"
BASELINE_COMMIT = "28e98723bf105636793a25e5d1b430479d265a33"
BASELINE = REPO_ROOT / "tools" / "rotation_release" / "baselines" / f"template-{BASELINE_VERSION}.yaml"
# Its digest, checked by tests/unit/test_deploy_docs.py (the file must stay what was committed then).
BASELINE_SHA256 = "9ba66b695ad83a7bc62bef0fe1a972e09286bcc3ad4053e890c8b429333be337"
_PARAMETER_KEYS = ("Type", "Default", "AllowedValues", "AllowedPattern", "MinValue", "MaxValue")


@dataclass(frozen=True)
class Grant:
    action: str
    resource: str
    condition: str | None

    def __str__(self) -> str:
        when = f" (only when {self.condition})" if self.condition else ""
        return f"`{self.action}` on {self.resource}{when}"


@dataclass(frozen=True)
class Summary:
    resources: Mapping[str, tuple[str, str | None, bool]]  # id -> (type, condition, created with the defaults)
    parameters: Mapping[str, Mapping[str, Any]]
    outputs: Mapping[str, str | None]  # output -> export name expression (None: not exported)
    grants: Mapping[str, frozenset[Grant]]  # role -> grants
    environment: Mapping[str, frozenset[str]]  # function -> variable names (its own and the Globals')


def summarize(template: Mapping[str, Any]) -> Summary:
    defaults = parameter_values(template)
    resources = {}
    for name, resource in template.get("Resources", {}).items():
        condition = resource.get("Condition")
        created = condition is None or condition_holds(template, condition, defaults)
        resources[name] = (resource["Type"], condition, created)
    parameters = {
        name: {key: spec[key] for key in _PARAMETER_KEYS if key in spec}
        for name, spec in template.get("Parameters", {}).items()
    }
    outputs = {}
    for name, output in template.get("Outputs", {}).items():
        export = output.get("Export", {}).get("Name")
        outputs[name] = None if export is None else str(export.get("Fn::Sub", export))
    grants = {
        role: frozenset(
            Grant(action, describe_resource(statement.body.get("Resource")), statement.condition)
            for statement in role_statements(template, role)
            for action in statement.actions
        )
        for role in roles(template)
    }
    shared = set(template.get("Globals", {}).get("Function", {}).get("Environment", {}).get("Variables", {}))
    environment = {
        name: frozenset(shared | set(function["Properties"].get("Environment", {}).get("Variables", {})))
        for name, function in resources_of_type(template, "AWS::Serverless::Function").items()
    }
    return Summary(resources, parameters, outputs, grants, environment)


def _names(items: list[str]) -> str:
    return ", ".join(f"`{item}`" for item in items) if items else "none"


def _resource_lines(old: Summary, new: Summary, template: Mapping[str, Any]) -> list[str]:
    added = [name for name in new.resources if name not in old.resources]
    removed = [name for name in old.resources if name not in new.resources]
    retyped = [
        name for name in new.resources if name in old.resources and new.resources[name][0] != old.resources[name][0]
    ]
    lines = []
    if added:
        lines.append(f"- **Resources added** ({len(added)}):")
        groups: dict[tuple[str, str | None, bool], list[str]] = {}
        for name in added:
            groups.setdefault(new.resources[name], []).append(name)
        for (kind, condition, created), names in groups.items():
            if condition is None:
                when = "always created"
            else:
                parameters = ", ".join(
                    f"`{p}`={parameter_values(template)[p]!s}" for p in _condition_parameter_names(template, condition)
                )
                when = f"{'created' if created else 'not created'} with the defaults ({parameters})"
            lines.append(f"  - {len(names)} × `{kind}`, {when}: {_names(names)}")
    else:
        lines.append("- **Resources added:** none")
    lines.append(f"- **Resources removed:** {_names(removed)}")
    lines.append(f"- **Resources whose type changed** (CloudFormation would replace them): {_names(retyped)}")
    conditions = [
        name for name in new.resources if name in old.resources and new.resources[name][1:] != old.resources[name][1:]
    ]
    if conditions:
        lines.append(f"- **Resources whose creating condition changed:** {_names(conditions)}")
    return lines


def _condition_parameter_names(template: Mapping[str, Any], condition: str) -> list[str]:
    from rotation_release.iam import condition_parameters

    return condition_parameters(template, condition)


def _default(parameter: Mapping[str, Any]) -> str:
    value = parameter.get("Default", "")
    return "empty" if value in ("", None) else f"`{value}`"


def _parameter_lines(old: Summary, new: Summary) -> list[str]:
    added = [name for name in new.parameters if name not in old.parameters]
    removed = [name for name in old.parameters if name not in new.parameters]
    lines = []
    if added:
        described = [f"`{name}` (default {_default(new.parameters[name])})" for name in added]
        lines.append(f"- **Parameters added** ({len(added)}): {', '.join(described)}")
    else:
        lines.append("- **Parameters added:** none")
    lines.append(f"- **Parameters removed:** {_names(removed)}")
    changed = []
    for name in new.parameters:
        if name in old.parameters and new.parameters[name] != old.parameters[name]:
            keys = [k for k in _PARAMETER_KEYS if new.parameters[name].get(k) != old.parameters[name].get(k)]
            changed.append(
                f"`{name}` ("
                + "; ".join(f"{k}: `{old.parameters[name].get(k)!s}` → `{new.parameters[name].get(k)!s}`" for k in keys)
                + ")"
            )
    lines.append(f"- **Parameters whose type, default or allowed values changed:** {', '.join(changed) or 'none'}")
    return lines


def _output_lines(old: Summary, new: Summary) -> list[str]:
    added = [name for name in new.outputs if name not in old.outputs]
    removed = [name for name in old.outputs if name not in new.outputs]
    renamed = [name for name in new.outputs if name in old.outputs and new.outputs[name] != old.outputs[name]]
    return [
        f"- **Outputs added:** {_names(added)}; **removed:** {_names(removed)}; **export names changed:** "
        f"{_names(renamed)}"
    ]


def _grant_lines(old: Summary, new: Summary) -> list[str]:
    lines = []
    for role in new.grants:
        before = old.grants.get(role, frozenset())
        added = sorted(new.grants[role] - before, key=str)
        removed = sorted(before - new.grants[role], key=str)
        if role not in old.grants:
            lines.append(f"  - `{role}` (new role): {'; '.join(map(str, added))}")
            continue
        if added:
            lines.append(f"  - `{role}` gains {'; '.join(map(str, added))}")
        if removed:
            lines.append(f"  - `{role}` loses {'; '.join(map(str, removed))}")
    lines += [f"  - `{role}` is removed" for role in old.grants if role not in new.grants]
    if not lines:
        return ["- **IAM:** no role gains or loses an action, resource or condition"]
    return ["- **IAM** (every action of every role, with its resource and condition):", *lines]


def _environment_lines(old: Summary, new: Summary) -> list[str]:
    changes = Counter[tuple[tuple[str, ...], tuple[str, ...]]]()
    functions: dict[tuple[tuple[str, ...], tuple[str, ...]], list[str]] = {}
    for name, variables in new.environment.items():
        before = old.environment.get(name, frozenset())
        key = (tuple(sorted(variables - before)), tuple(sorted(before - variables)))
        if key != ((), ()):
            changes[key] += 1
            functions.setdefault(key, []).append(name)
    if not changes:
        return ["- **Function environment:** unchanged"]
    lines = ["- **Function environment:**"]
    for (added, removed), names in functions.items():
        who = "every function" if len(names) == len(new.environment) else ", ".join(f"`{n}`" for n in names)
        parts = ([f"adds {_names(list(added))}"] if added else []) + (
            [f"drops {_names(list(removed))}"] if removed else []
        )
        lines.append(f"  - {who} {' and '.join(parts)}")
    return lines


def render_upgrade(old_template: Mapping[str, Any], new_template: Mapping[str, Any], old_label: str) -> str:
    old, new = summarize(old_template), summarize(new_template)
    lines = [f"Updating a stack deployed from {old_label} to this version's `template.yaml` changes:", ""]
    lines += _resource_lines(old, new, new_template)
    lines += _parameter_lines(old, new)
    lines += _output_lines(old, new)
    lines += _grant_lines(old, new)
    lines += _environment_lines(old, new)
    return "\n".join(lines)


def baseline_label() -> str:
    return (
        f"the `template.yaml` of {BASELINE_VERSION} (commit {BASELINE_COMMIT[:7]}, kept as "
        f"`{BASELINE.relative_to(REPO_ROOT)}`)"
    )


def render_upgrade_from_baseline(template_path: Path = REPO_ROOT / "template.yaml") -> str:
    return render_upgrade(load(BASELINE), load(template_path), baseline_label())
