"""Reading CloudFormation templates: YAML with the short forms (!Ref, !Sub, !GetAtt ...) read as their long
forms, and the template's own conditions evaluated for given parameter values.

Used by the tests (``tests/cloudformation.py`` re-exports the loader), by the generated parts of the docs
(:mod:`rotation_release.iam`, :mod:`rotation_release.compare`) and by the CDK example's test, which reads
CDK's synthesized JSON (a YAML subset) the same way.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import yaml

NO_VALUE = {"Ref": "AWS::NoValue"}


class CloudFormationLoader(yaml.SafeLoader):
    """YAML with CloudFormation's short forms (!Ref, !Sub, !GetAtt ...) read as their long forms."""


def _construct_short_form(loader: yaml.SafeLoader, suffix: str, node: yaml.Node) -> dict[str, Any]:
    name = "Ref" if suffix == "Ref" else f"Fn::{suffix}"
    value: Any
    if isinstance(node, yaml.ScalarNode):
        value = loader.construct_scalar(node)
        if suffix == "GetAtt":
            value = value.split(".", 1)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    elif isinstance(node, yaml.MappingNode):
        value = loader.construct_mapping(node, deep=True)
    else:
        raise TypeError(f"unexpected YAML node {node!r}")
    return {name: value}


CloudFormationLoader.add_multi_constructor("!", _construct_short_form)


def loads(text: str) -> dict[str, Any]:
    data: dict[str, Any] = yaml.load(text, Loader=CloudFormationLoader)  # noqa: S506 (SafeLoader subclass)
    return data


def load(path: Path) -> dict[str, Any]:
    return loads(path.read_text(encoding="utf-8"))


class UnresolvedError(ValueError):
    """A condition uses something this evaluator does not know (a pseudo parameter, an unknown function)."""


def parameter_values(template: Mapping[str, Any], given: Mapping[str, str] | None = None) -> dict[str, Any]:
    """Every parameter's value: ``given`` over the template's defaults (lists split like CommaDelimitedList)."""
    values: dict[str, Any] = {}
    for name, spec in template.get("Parameters", {}).items():
        value = (given or {}).get(name, spec.get("Default"))
        if spec.get("Type") == "CommaDelimitedList":
            value = [] if value in (None, "") else [part.strip() for part in str(value).split(",")]
        values[name] = value
    return values


def _ref(name: str, template: Mapping[str, Any], parameters: Mapping[str, Any]) -> Any:
    if name not in parameters:
        raise UnresolvedError(f"Ref {name}")
    return parameters[name]


def _join(argument: list[Any], template: Mapping[str, Any], parameters: Mapping[str, Any]) -> str:
    separator, items = argument
    return str(separator).join(
        str(evaluate(item, template, parameters)) for item in evaluate(items, template, parameters)
    )


_Function = Callable[[Any, Mapping[str, Any], Mapping[str, Any]], Any]
_FUNCTIONS: dict[str, _Function] = {
    "Ref": _ref,
    "Condition": lambda name, t, p: evaluate(t["Conditions"][name], t, p),
    "Fn::Equals": lambda args, t, p: str(evaluate(args[0], t, p)) == str(evaluate(args[1], t, p)),
    "Fn::Not": lambda args, t, p: not evaluate(args[0], t, p),
    "Fn::And": lambda args, t, p: all(evaluate(item, t, p) for item in args),
    "Fn::Or": lambda args, t, p: any(evaluate(item, t, p) for item in args),
    "Fn::Join": _join,
}


def evaluate(value: Any, template: Mapping[str, Any], parameters: Mapping[str, Any]) -> Any:
    """The value of a condition expression: Fn::Equals/Not/And/Or, Condition, Ref to a parameter, Fn::Join."""
    if isinstance(value, dict) and len(value) == 1:
        ((function, argument),) = value.items()
        if function not in _FUNCTIONS:
            raise UnresolvedError(function)
        return _FUNCTIONS[function](argument, template, parameters)
    if isinstance(value, list):
        return [evaluate(item, template, parameters) for item in value]
    return value


def condition_holds(template: Mapping[str, Any], name: str, parameters: Mapping[str, Any]) -> bool:
    return bool(evaluate(template["Conditions"][name], template, parameters))


def resolve_ifs(value: Any, template: Mapping[str, Any], parameters: Mapping[str, Any]) -> Any:
    """``value`` with every Fn::If replaced by its chosen branch, Refs to parameters by their values and
    AWS::NoValue items and keys dropped."""
    if isinstance(value, dict):
        if set(value) == {"Fn::If"}:
            name, when_true, when_false = value["Fn::If"]
            chosen = when_true if condition_holds(template, name, parameters) else when_false
            return resolve_ifs(chosen, template, parameters)
        if set(value) == {"Ref"} and value["Ref"] in parameters:
            return parameters[value["Ref"]]
        resolved = {key: resolve_ifs(item, template, parameters) for key, item in value.items()}
        return {key: item for key, item in resolved.items() if item != NO_VALUE}
    if isinstance(value, list):
        items = [resolve_ifs(item, template, parameters) for item in value]
        return [item for item in items if item != NO_VALUE]
    return value


def normalized(value: Any) -> Any:
    """``{"Fn::GetAtt": "Name.Attribute"}`` (the string form CDK's CfnInclude keeps) as the list form."""
    if isinstance(value, dict):
        if set(value) == {"Fn::GetAtt"} and isinstance(value["Fn::GetAtt"], str):
            return {"Fn::GetAtt": value["Fn::GetAtt"].split(".", 1)}
        return {key: normalized(item) for key, item in value.items()}
    if isinstance(value, list):
        return [normalized(item) for item in value]
    return value


def resources_of_type(template: Mapping[str, Any], resource_type: str) -> dict[str, dict[str, Any]]:
    return {name: r for name, r in template.get("Resources", {}).items() if r.get("Type") == resource_type}
