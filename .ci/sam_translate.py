"""Translate template.yaml (SAM) into plain CloudFormation for checkov, offline.

Usage: sam_translate.py TEMPLATE OUTPUT.json   (run with .venv-sam/bin/python: it needs samtranslator)

Local CodeUri/ContentUri paths become placeholder S3 URIs (as `sam validate` does); parameters keep
their defaults, so conditional statements stay as Fn::If for checkov to read both branches.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import boto3
from samtranslator.parser.parser import Parser
from samtranslator.translator.translator import Translator
from samtranslator.yaml_helper import yaml_parse


def main(source: str, target: str) -> int:
    template = yaml_parse(Path(source).read_text())
    for resource in template.get("Resources", {}).values():
        properties = resource.get("Properties", {})
        for key in ("CodeUri", "ContentUri"):
            value = properties.get(key)
            if isinstance(value, str) and not value.startswith("s3://"):
                properties[key] = f"s3://local-build/{value}"
    session = boto3.session.Session(region_name="us-east-1")  # pseudo parameters only; no call is made
    translated = Translator({}, Parser(), boto_session=session).translate(template, parameter_values={})
    Path(target).write_text(json.dumps(translated, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2]))
