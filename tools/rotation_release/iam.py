"""What the template's roles may do, read from the template itself: the statements of each role and the
actions a permissions boundary must allow (the generated table in docs/deploy.md).

A statement is found inline in a role (``Policies``) or in an ``AWS::IAM::Policy`` attached to it; a
statement or policy wrapped in ``Fn::If [condition, value, AWS::NoValue]`` exists only when the condition
holds, and is reported with that condition.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from rotation_release.cfn import NO_VALUE, resources_of_type


@dataclass(frozen=True)
class Statement:
    role: str
    source: str  # "<Role>/<PolicyName>" or the AWS::IAM::Policy's logical id
    body: Mapping[str, Any]
    condition: str | None  # the template condition it depends on, if any

    @property
    def actions(self) -> frozenset[str]:
        action = self.body["Action"]
        return frozenset([action] if isinstance(action, str) else action)


def _unwrap(items: list[Any], condition: str | None = None) -> Iterator[tuple[Mapping[str, Any], str | None]]:
    """Items of a list, with Fn::If [cond, value, AWS::NoValue] read as 'value when cond'."""
    for item in items:
        if isinstance(item, dict) and set(item) == {"Fn::If"}:
            name, when_true, when_false = item["Fn::If"]
            if when_false != NO_VALUE:
                raise ValueError(f"{name}: a conditional policy or statement must drop the item when false")
            yield from _unwrap([when_true], name)
        else:
            yield item, condition


def roles(template: Mapping[str, Any]) -> list[str]:
    return list(resources_of_type(template, "AWS::IAM::Role"))


def role_statements(template: Mapping[str, Any], role: str) -> list[Statement]:
    """Every statement that grants ``role`` something, inline or through an attached AWS::IAM::Policy."""
    resources = template["Resources"]
    found: list[Statement] = []
    for policy, condition in _unwrap(resources[role]["Properties"].get("Policies", [])):
        for statement, inner in _unwrap(policy["PolicyDocument"]["Statement"], condition):
            found.append(Statement(role, f"{role}/{policy['PolicyName']}", statement, inner))
    for name, resource in resources_of_type(template, "AWS::IAM::Policy").items():
        if {"Ref": role} in resource["Properties"].get("Roles", []):
            for statement, condition in _unwrap(resource["Properties"]["PolicyDocument"]["Statement"]):
                found.append(Statement(role, name, statement, condition or resource.get("Condition")))
    return found


def condition_parameters(template: Mapping[str, Any], condition: str) -> list[str]:
    """The parameters a template condition reads, in the order it names them."""
    names: list[str] = []

    def walk(value: Any) -> None:
        if isinstance(value, dict):
            for key, item in value.items():
                if key == "Ref" and isinstance(item, str) and item in template.get("Parameters", {}):
                    names.append(item) if item not in names else None
                elif key == "Condition" and isinstance(item, str):
                    walk(template["Conditions"][item])
                else:
                    walk(item)
        elif isinstance(value, list):
            for item in value:
                walk(item)

    walk(template["Conditions"][condition])
    return names


def describe_resource(resource: Any) -> str:
    """A statement's resource in a few words: ``arn:…:secret:<PostgresMasterSecrets>``, ``its own log group``."""
    if isinstance(resource, list):
        return ", ".join(describe_resource(item) for item in resource)
    if resource == "*":
        return "`*`"
    if isinstance(resource, dict) and set(resource) == {"Fn::GetAtt"}:
        target = resource["Fn::GetAtt"][0]
        return "its own log group" if target.endswith("LogGroup") else f"`{target}`"
    if isinstance(resource, dict) and set(resource) == {"Ref"}:
        return f"`<{resource['Ref']}>`"
    if isinstance(resource, dict) and set(resource) == {"Fn::Sub"}:
        text = resource["Fn::Sub"] if isinstance(resource["Fn::Sub"], str) else resource["Fn::Sub"][0]
        text = re.sub(
            r"^arn:\$\{AWS::Partition\}:([a-z0-9-]+):\$\{AWS::Region\}:\$\{AWS::AccountId\}:", r"arn:…:\1:", text
        )
        return "`" + re.sub(r"\$\{([A-Za-z0-9]+)\}", r"<\1>", text) + "`"
    return f"`{resource}`"


@dataclass(frozen=True)
class BoundaryRow:
    """One action the boundary must allow, for which roles, when, on what."""

    action: str
    roles: tuple[str, ...]
    when: tuple[str, ...]  # parameters that must be set for the statement to exist; empty: always
    resources: tuple[str, ...]


def boundary_rows(template: Mapping[str, Any]) -> list[BoundaryRow]:
    """Every action any role of the template may be granted, grouped by the parameters it depends on."""
    grouped: dict[tuple[str, tuple[str, ...]], tuple[list[str], list[str]]] = {}
    for role in roles(template):
        for statement in role_statements(template, role):
            if statement.body.get("Effect") != "Allow":
                continue
            when = tuple(condition_parameters(template, statement.condition)) if statement.condition else ()
            resource = describe_resource(statement.body.get("Resource"))
            for action in sorted(statement.actions):
                who, where = grouped.setdefault((action, when), ([], []))
                who.append(role) if role not in who else None
                where.append(resource) if resource not in where else None
    return [
        BoundaryRow(action, tuple(who), when, tuple(where))
        for (action, when), (who, where) in sorted(grouped.items(), key=lambda item: (item[0][1], item[0][0]))
    ]


_SECRET_PATTERN = re.compile(r"`arn:…:secretsmanager:secret:<([A-Za-z0-9]+)>`")


def _resources(resources: tuple[str, ...]) -> str:
    """Secret ARNs of a parameter's name pattern read as that parameter: "secrets matching `A`, `B`"."""
    secrets = [match.group(1) for text in resources if (match := _SECRET_PATTERN.fullmatch(text))]
    others = [text for text in resources if not _SECRET_PATTERN.fullmatch(text)]
    parts = [f"secrets matching {', '.join(f'`{name}`' for name in secrets)}"] if secrets else []
    return "; ".join(parts + others)


def render_boundary(template: Mapping[str, Any]) -> str:
    """The docs' table of what a permissions boundary must allow, and a minimal boundary policy."""
    all_roles = roles(template)
    rows = boundary_rows(template)

    def who(names: tuple[str, ...]) -> str:
        if len(names) == len(all_roles):
            return f"all {len(all_roles)} roles"
        return ", ".join(name.removesuffix("Role") for name in names)

    lines = [
        f"The template creates {len(all_roles)} roles ({', '.join(all_roles)}). A boundary must allow at least:",
        "",
        "| action | roles | only when | on |",
        "|---|---|---|---|",
    ]
    for row in rows:
        when = ", ".join(f"`{name}` is set" for name in row.when) or "always"
        lines.append(f"| `{row.action}` | {who(row.roles)} | {when} | {_resources(row.resources)} |")
    actions = sorted({row.action for row in rows})
    lines += [
        "",
        "A boundary that allows these actions on any resource lets each role keep exactly what the template",
        "grants it (the roles' own policies name the resources); a boundary that names resources must cover the",
        "ones above for the name patterns you deploy with. The smallest such boundary:",
        "",
        "```json",
        '{"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Resource": "*", "Action": [',
        *(f'  "{action}"{"," if i < len(actions) - 1 else ""}' for i, action in enumerate(actions)),
        "]}]}",
        "```",
    ]
    return "\n".join(lines)
