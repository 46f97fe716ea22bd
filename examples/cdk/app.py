"""The CDK app: one stack, ``secrets-rotation``, configured by the context of cdk.json (or ``-c``).

Context keys (cdk.json holds the defaults; README.md in this folder has an example):

- ``source``: ``template`` (this clone's template.yaml and a `sam build` of it) or ``sar`` (a published release);
- ``build_dir``: the `sam build` output for ``template`` (default ``../../.aws-sam/deploy-default/build``, what
  ``make deploy-build`` writes);
- ``application_id``, ``semantic_version``: the release for ``sar``;
- ``permissions_boundary``: ARN of the managed policy every role gets as its boundary (empty: none);
- ``rotations``: a list of ``{"function": "PostgresSingleUser" | "PostgresAlternatingUsers" | "MySqlSingleUser"
  | "MySqlAlternatingUsers" | "ApiKey", "secret": ARN, "master" or "admin": ARN}``;
- ``parameters``: any other parameter of template.yaml, by name (``Architecture``, ``KmsKeyArn``, ``VpcSubnetIds``
  as a comma-separated string ...);
- ``rotate_immediately``: rotate as soon as a schedule is created (default true).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import aws_cdk as cdk
from rotation_stack import Rotation, RotationStack

HERE = Path(__file__).resolve().parent
STACK_NAME = "secrets-rotation"


def _context(app: cdk.App, key: str, default: Any) -> Any:
    value = app.node.try_get_context(key)
    if value is None:
        return default
    # `-c key=value` gives strings; lists and objects may come as JSON text.
    if isinstance(default, (list, dict, bool)) and isinstance(value, str):
        return json.loads(value)
    return value


def main() -> None:
    app = cdk.App()
    rotations = [
        Rotation(entry["function"], entry["secret"], entry.get("master") or entry.get("admin"))
        for entry in _context(app, "rotations", [])
    ]
    RotationStack(
        app,
        STACK_NAME,
        source=_context(app, "source", "template"),
        rotations=rotations,
        permissions_boundary=_context(app, "permissions_boundary", ""),
        parameters={key: str(value) for key, value in _context(app, "parameters", {}).items()},
        application_id=_context(app, "application_id", ""),
        semantic_version=_context(app, "semantic_version", ""),
        build_dir=(HERE / _context(app, "build_dir", "../../.aws-sam/deploy-default/build")).resolve(),
        rotate_immediately=_context(app, "rotate_immediately", True),
        description="Secrets Manager rotation functions and their rotation schedules (examples/cdk)",
    )
    app.synth()


if __name__ == "__main__":
    main()
