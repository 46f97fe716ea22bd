"""Offline check of GitHub workflows: actions pinned to commits, packages installed only from hash locks.

Rules (each finding names the file and line):

- ``uses:`` of an action or reusable workflow from another repository must name a full 40-hex commit
  SHA, followed by a comment with the release it is (``# v4.2.2``): a tag or a branch can be moved
  to other code after review. ``./local`` actions are fine; ``docker://`` images need ``@sha256:``.
- ``pip install`` (also ``python -m pip``, ``pip3``, ``uv pip``) in a ``run:`` script may only install
  requirement files (``-r``) in which every package is pinned with ``==`` and carries ``--hash``; a
  package named on the command line (``pip install foo==1.2``: its dependencies float, nothing is
  hash-checked) or a requirement file without hashes is a finding. Extra indexes and find-links are
  findings too: they let another server answer for a package name.
- Installers that cannot check hashes are findings: ``pipx install``/``pipx run``, ``uvx``,
  ``npx``, ``npm install`` (``npm ci`` installs a lock file and is fine), ``go install``, and
  ``curl``/``wget`` piped into a shell.

What a ``make`` target or a script installs is not visible here: those read hash locks themselves
(tools/bootstrap.sh, .ci/template-checks.sh).
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from rotation_release.sbom import requirement_entries

_USES_LINE = re.compile(r"""^\s*(?:-\s+)?uses:\s*(?P<q>["']?)(?P<ref>[^"'\s#]+)(?P=q)\s*(?:#\s*(?P<comment>.*))?$""")
_SHA = re.compile(r"[0-9a-f]{40}")
_VERSION_COMMENT = re.compile(r"v?\d+(?:\.\d+)*(?:[-+][0-9A-Za-z.-]+)?")
_PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)(?:\[[^\]]*\])?==[^\s;\\]+")
# pip options that take a value (the value is not a requirement).
_PIP_VALUE_OPTIONS = frozenset({
    "-r", "--requirement", "-c", "--constraint", "-t", "--target", "--platform", "--python-version",
    "--implementation", "--abi", "--root", "--prefix", "--src", "--upgrade-strategy", "--progress-bar",
    "--log", "--cache-dir", "--only-binary", "--no-binary", "-C", "--config-settings", "--global-option",
    "--report", "--python", "--timeout", "--retries", "--exists-action", "--cert", "--client-cert",
    "--proxy", "--root-user-action", "-e", "--editable", "-i", "--index-url", "--extra-index-url",
    "-f", "--find-links", "--trusted-host", "--keyring-provider", "--use-feature", "--use-deprecated",
    "--resume-retries",
})  # fmt: skip
_OTHER_SOURCES = frozenset({"-i", "--index-url", "--extra-index-url", "-f", "--find-links", "--trusted-host"})
_SHELLS = frozenset({"sh", "bash", "zsh", "dash", "python", "python3"})


@dataclass(frozen=True)
class Finding:
    path: str
    line: int
    message: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.message}"


def check_uses(path: str, text: str) -> list[Finding]:
    findings = []
    for number, line in enumerate(text.splitlines(), 1):
        match = _USES_LINE.match(line)
        if match is None:
            continue
        ref, comment = match["ref"], (match["comment"] or "").strip()
        if ref.startswith("./"):
            continue
        if ref.startswith("docker://"):
            if "@sha256:" not in ref:
                findings.append(Finding(path, number, f"{ref}: pin the image by digest (@sha256:...)"))
            continue
        name, _, version = ref.partition("@")
        if not version:
            findings.append(Finding(path, number, f"{ref}: no version; pin a full commit SHA (# vX.Y.Z)"))
        elif not _SHA.fullmatch(version):
            findings.append(Finding(path, number, f"{name}@{version}: a tag or branch can move; pin a full commit SHA"))
        elif not _VERSION_COMMENT.fullmatch(comment.split()[0] if comment else ""):
            findings.append(Finding(path, number, f"{name}@{version[:12]}...: say which release it is (# vX.Y.Z)"))
    return findings


def _run_scripts(node: Any) -> Iterator[str]:
    """Every ``run:`` script of a parsed workflow, in document order."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "run" and isinstance(value, str):
                yield value
            else:
                yield from _run_scripts(value)
    elif isinstance(node, list):
        for item in node:
            yield from _run_scripts(item)


_REDIRECTION = re.compile(r"""(?:^|(?<=\s))(?:\d*|&)(?:>>?|<)&?\s*(?:"[^"]*"|'[^']*'|[^\s;&|]+)""")
_KEYWORDS = frozenset({"if", "then", "else", "elif", "do", "while", "until", "!", "{", "(", "time", "exec"})


def _logical_lines(script: str) -> Iterator[tuple[int, str]]:
    """(0-based line, text) of a script's lines, with backslash-continued lines joined."""
    pending, start = "", 0
    for index, line in enumerate(script.splitlines()):
        if not pending:
            start = index
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        yield start, pending + line
        pending = ""
    if pending:
        yield start, pending


def _commands(script: str) -> Iterator[tuple[int, list[str]]]:
    """(0-based line, words) of the simple commands of a shell script, roughly: lines split at ;, &&, ||
    and | (a command after a pipe starts with "|"); redirections and leading keywords removed."""
    for index, line in _logical_lines(script):
        stripped = _REDIRECTION.sub(" ", line).strip()
        if not stripped or stripped.startswith("#"):
            continue
        try:
            lexer = shlex.shlex(stripped, posix=True, punctuation_chars=";&|()")
            lexer.whitespace_split = True
            lexer.commenters = "#"
            tokens = list(lexer)
        except ValueError:  # unbalanced quotes (a heredoc body, say): fall back to white space
            tokens = stripped.split()
        command: list[str] = []
        for token in tokens:
            if token in (";", "&&", "||", "|", "&", "|&", "(", ")", ";;"):
                if command and command != ["|"]:
                    yield index, command
                command = ["|"] if token in ("|", "|&") else []
            elif token in _KEYWORDS and command in ([], ["|"]):
                continue
            else:
                command.append(token)
        if command and command != ["|"]:
            yield index, command


def _program(token: str) -> str:
    return token.rsplit("/", 1)[-1].strip("\"'")


def _pip_install_args(command: list[str]) -> list[str] | None:
    """The arguments after ``install`` if ``command`` is a pip install, else None."""
    words = list(command)
    while words and (words[0] in ("sudo", "env") or re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*=.*", words[0])):
        words = words[1:]  # sudo, env and VAR=value prefixes
    if not words:
        return None
    program = _program(words[0])
    rest = words[1:]
    if re.fullmatch(r"python[0-9.]*", program):
        if rest[:2] != ["-m", "pip"]:
            return None
        rest = rest[2:]
    elif program == "uv" and rest[:1] == ["pip"]:
        rest = rest[1:]
    elif not re.fullmatch(r"pip[0-9.]*", program):
        return None
    while rest and rest[0].startswith("-") and rest[0] != "install":  # global options before the command
        rest = rest[1:]
    return rest[1:] if rest[:1] == ["install"] else None


def _unhashed(requirements: Path) -> list[str]:
    """Requirements of a file that are not pinned with == and a --hash (by first line)."""
    bad = []
    for entry in requirement_entries(requirements):
        if entry[0].startswith("-"):
            bad.append(entry[0])  # options (-r, -e, --index-url ...) inside the file: not a pinned package
        elif not _PIN.match(entry[0]) or not any("--hash=sha256:" in part for part in entry):
            bad.append(entry[0].rstrip("\\ "))
    return bad


def _check_pip(path: str, line: int, args: list[str], root: Path) -> list[Finding]:
    findings = []
    files = []
    index = 0
    while index < len(args):
        arg = args[index]
        option, has_value, inline = arg.partition("=")
        if option in _OTHER_SOURCES:
            findings.append(Finding(path, line, f"pip install {option}: only PyPI may answer for a package name"))
        if option in _PIP_VALUE_OPTIONS and option.startswith("-"):
            value = inline if has_value else (args[index + 1] if index + 1 < len(args) else "")
            if option in ("-r", "--requirement"):
                files.append(value)
            if option in ("-e", "--editable"):
                findings.append(Finding(path, line, f"pip install {option} {value}: not a hash-pinned package"))
            index += 1 if has_value else 2
            continue
        if re.fullmatch(r"-r\S+", arg):  # -rfile
            files.append(arg[2:])
        elif not arg.startswith("-"):
            findings.append(Finding(path, line, f"pip install {arg}: name packages in a hash-locked requirements file"))
        index += 1
    if not files and not findings:
        findings.append(Finding(path, line, "pip install without a requirements file (-r) to pin and hash-check"))
    for name in files:
        requirements = root / name
        if "$" in name or not requirements.is_file():
            findings.append(Finding(path, line, f"pip install -r {name}: not a file of this repository to check"))
            continue
        bad = _unhashed(requirements)
        if bad:
            findings.append(Finding(path, line, f"pip install -r {name}: not pinned with hashes: {', '.join(bad[:3])}"))
    return findings


def _other_installer(command: list[str]) -> str | None:
    """Why ``command`` installs or runs a package nothing hash-checks (None: it does not)."""
    words = command[1:] if command[0] == "|" else list(command)
    while words and (words[0] in ("sudo", "env") or re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*=.*", words[0])):
        words = words[1:]
    program = _program(words[0]) if words else ""
    second = words[1] if len(words) > 1 else ""
    reason = None
    if program == "pipx" and second in ("install", "run", "inject"):
        reason = f"pipx {second}: cannot hash-check; install from a hash-locked file with pip"
    elif program in ("uvx", "npx") or (program == "uv" and second == "tool"):
        reason = f"{program}: runs a package it fetches unpinned"
    elif program in ("npm", "yarn", "pnpm") and second in ("install", "i", "add"):
        reason = f"{program} {second}: install a lock file instead (npm ci)"
    elif program == "go" and second == "install":
        reason = "go install: build a pinned module from go.sum instead"
    elif command[0] == "|" and program in _SHELLS:
        reason = f"a download piped into {program}: nothing checks what runs"
    return reason


def _check_command(path: str, line: int, command: list[str], root: Path) -> list[Finding]:
    args = _pip_install_args(command)
    if args is not None:
        return _check_pip(path, line, args, root)
    reason = _other_installer(command)
    return [] if reason is None else [Finding(path, line, reason)]


def _script_start(lines: list[str], script: str, after: int) -> int:
    """The 0-based line of the workflow where ``script`` starts, searching from ``after``."""
    first = next((line.strip() for line in script.splitlines() if line.strip()), "")
    for number in range(after, len(lines)):
        if first and first in lines[number]:
            return number
    return after


def check_installs(path: str, text: str, root: Path) -> list[Finding]:
    try:
        workflow = yaml.safe_load(text)
    except yaml.YAMLError as error:
        return [Finding(path, 1, f"not YAML: {error}")]
    lines = text.splitlines()
    findings: list[Finding] = []
    cursor = 0
    for script in _run_scripts(workflow):
        cursor = _script_start(lines, script, cursor)
        commands = list(_commands(script))
        previous: list[str] = []
        for offset, command in commands:
            words = command
            if words[0] == "|":
                producer = _program(previous[0]) if previous else ""
                words = words if producer in ("curl", "wget") else words[1:]
            if words:
                findings += _check_command(path, cursor + offset + 1, words, root)
            previous = command[1:] if command[0] == "|" else command
    return findings


def check_workflow(path: Path, root: Path) -> list[Finding]:
    text = path.read_text(encoding="utf-8")
    shown = str(path.relative_to(root)) if path.is_relative_to(root) else str(path)
    return check_uses(shown, text) + check_installs(shown, text, root)


def check_all(paths: list[Path], root: Path) -> list[Finding]:
    findings = []
    for path in paths:
        findings += check_workflow(path, root)
    return findings
