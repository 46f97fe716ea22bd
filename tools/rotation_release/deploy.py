"""Deploying from a clone: one architecture setting for `sam build` and `sam deploy`, and builds that say
which architecture they hold.

``samconfig.toml`` sets ``Architecture`` once per environment, in ``parameter_overrides`` of its
``global`` section, which both `sam build` and `sam deploy` read (a ``deploy`` section's own
``parameter_overrides``, as ``sam deploy --guided`` writes them, wins for the deploy, and so here).
:func:`deploy_architecture` reads it the way `sam deploy` will. :func:`pin_build` checks that every
compiled file of a build is of one architecture and narrows the built template's ``Architecture``
parameter to it, so a plain `sam deploy` of that build with another architecture fails before anything
changes instead of shipping x86_64 drivers to arm64 functions (or the reverse).
"""

from __future__ import annotations

import re
import shlex
import tomllib
from pathlib import Path
from typing import Any

import yaml

from rotation_release.files import ReleaseError, elf_files
from rotation_release.project import REPO_ROOT
from rotation_release.sar import ARCHITECTURES

SAMCONFIG = REPO_ROOT / "samconfig.toml"
PARAMETER = "Architecture"


class ConfigError(ValueError):
    """samconfig.toml does not say which architecture, or says it in a form SAM would not read."""


def parameter_overrides(text: str) -> dict[str, str]:
    """``Key=value Key2="a b"`` or ``ParameterKey=K,ParameterValue=V`` pairs, as SAM CLI reads them."""
    overrides = {}
    for word in shlex.split(text):
        long_form = re.fullmatch(r"ParameterKey=([^,]+),ParameterValue=(.*)", word)
        if long_form:
            overrides[long_form.group(1)] = long_form.group(2)
        elif "=" in word:
            key, _, value = word.partition("=")
            overrides[key] = value
        else:
            raise ConfigError(f"parameter_overrides: {word!r} is not Key=value")
    return overrides


def _section(config: dict[str, Any], env: str, command: str) -> dict[str, Any]:
    section = config.get(env, {}).get(command, {}).get("parameters", {})
    return section if isinstance(section, dict) else {}


def command_architecture(env: str, command: str, path: Path = SAMCONFIG, default: str = "arm64") -> str:
    """The Architecture `sam <command> --config-env ENV` uses: the command's section's parameter_overrides
    if it has any (they replace the global ones whole), else the global section's, else the template's
    default."""
    config = tomllib.loads(path.read_text(encoding="utf-8"))
    if env not in config:
        known = ", ".join(k for k in config if k != "version")
        raise ConfigError(f"{path.name} has no environment {env!r} (it has {known})")
    for section in (command, "global"):
        text = _section(config, env, section).get("parameter_overrides")
        if text is None:
            continue
        value = parameter_overrides(str(text)).get(PARAMETER, default)
        if value not in ARCHITECTURES:
            raise ConfigError(f"[{env}.{section}.parameters] sets {PARAMETER}={value}; use one of {ARCHITECTURES}")
        return value
    return default


def deploy_architecture(env: str = "default", path: Path = SAMCONFIG) -> str:
    """The Architecture `sam deploy --config-env ENV` deploys with."""
    return command_architecture(env, "deploy", path)


def pin_build(build_dir: Path, architecture: str) -> None:
    """Check that the build's compiled files are all for ``architecture``; then fix its template to it."""
    template = build_dir / "template.yaml"
    if not template.is_file():
        raise ReleaseError(f"{template} is missing: run sam build first")
    wrong = [f"{path} ({found or 'unknown'})" for path, found in elf_files(build_dir) if found != architecture]
    if wrong:
        raise ReleaseError(f"{build_dir} holds compiled files of another architecture than {architecture}: "
                           f"{', '.join(wrong[:3])}; build again for {architecture}")  # fmt: skip
    data = yaml.safe_load(template.read_text(encoding="utf-8"))
    parameter = data.get("Parameters", {}).get(PARAMETER)
    if not isinstance(parameter, dict):
        raise ReleaseError(f"{template} has no {PARAMETER} parameter")
    parameter["Default"] = architecture
    parameter["AllowedValues"] = [architecture]
    parameter["Description"] = f"This build holds {architecture} code only (pinned by `rotation_release pin-build`)."
    template.write_text(yaml.safe_dump(data, sort_keys=False, width=120), encoding="utf-8")
