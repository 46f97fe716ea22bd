"""Command line: ``python -m rotation_release artifacts|check-metadata|check-workflows|check-release|notes|version|
release-sizes|architecture|pin-build``.

Run with ``PYTHONPATH=layers/rotation_core:tools`` and a Python that has PyYAML (``.venv-sam`` or the
dev venv); ``make release-artifacts`` and ``.ci/template-checks.sh`` do.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rotation_release import project as project_module
from rotation_release.files import ReleaseError
from rotation_release.project import REPO_ROOT, Project, changelog_problems, changelog_releases, tag_problems
from rotation_release.sar import ARCHITECTURES, METADATA_KEY, metadata_problems
from rotation_release.sbom import first_party_version

CORE_INIT = REPO_ROOT / "layers" / "rotation_core" / "rotation_core" / "__init__.py"


def load_template(path: Path) -> dict[str, Any]:
    """A template's YAML, CloudFormation's short forms (!Ref, !Sub ...) read as None: only Metadata is read."""
    import yaml

    class TemplateLoader(yaml.SafeLoader):
        pass

    TemplateLoader.add_multi_constructor("!", lambda loader, suffix, node: None)
    data: dict[str, Any] = yaml.load(path.read_text(encoding="utf-8"), Loader=TemplateLoader)  # noqa: S506
    return data


def _check_metadata(dist: Path | None) -> list[str]:
    project = project_module.load()
    targets: list[tuple[Path, str | None]] = [(REPO_ROOT / "template.yaml", None)]
    if dist is not None:
        from rotation_release.artifacts import Names

        targets += [(dist / Names(project).template(arch), arch) for arch in ARCHITECTURES]
    problems = []
    for path, arch in targets:
        if not path.is_file():
            problems.append(f"{path}: missing")
            continue
        metadata = (load_template(path).get("Metadata") or {}).get(METADATA_KEY) or {}
        problems += [f"{path}: {p}" for p in metadata_problems(metadata, project, template_dir=path.parent,
                                                              architecture=arch)]  # fmt: skip
        if not problems:
            print(f"{path.relative_to(REPO_ROOT) if path.is_relative_to(REPO_ROOT) else path}: "
                  f"SAR metadata complete, version {project.version}")  # fmt: skip
    core = first_party_version(CORE_INIT)
    if core != project.version:
        problems.append(f"rotation_core.__version__ is {core}, pyproject.toml says {project.version}")
    problems += changelog_problems(project_module.CHANGELOG.read_text(encoding="utf-8"), project.version,
                                   released=False)  # fmt: skip
    return problems


def _version(project: Project, args: argparse.Namespace) -> list[str]:
    print(project.version)
    return []


def _lock_subset(project: Project, args: argparse.Namespace) -> list[str]:
    from rotation_release.sbom import lock_entries

    try:
        print(lock_entries(args.lock, args.packages), end="")
    except ReleaseError as error:
        return [f"lock-subset: {error}"]
    return []


def _notes(project: Project, args: argparse.Namespace) -> list[str]:
    wanted = args.version or project.version
    for entry in changelog_releases(project_module.CHANGELOG.read_text(encoding="utf-8")):
        if entry.version == wanted:
            print(entry.body)
            return []
    return [f"CHANGELOG.md has no section for {wanted}"]


def _artifacts(project: Project, args: argparse.Namespace) -> list[str]:
    from rotation_release.artifacts import make_release

    builds = {}
    for spec in args.build:
        arch, _, folder = spec.partition("=")
        builds[arch] = Path(folder).resolve()
    try:
        written = make_release(project, builds, args.dist.resolve())
    except ReleaseError as error:
        return [f"release: {error}"]
    for path in written:
        print(f"{path.stat().st_size:>10,}  {path.name}")
    return []


def _workflows(project: Project, args: argparse.Namespace) -> list[str]:
    from rotation_release.workflows import check_all

    paths = args.paths or sorted((REPO_ROOT / ".github" / "workflows").glob("*.y*ml"))
    problems = [str(f) for f in check_all([p.resolve() for p in paths], REPO_ROOT)]
    if not problems:
        print(f"workflows: {len(paths)} files, every action pinned to a commit, every install hash-locked")
    return problems


def _release(project: Project, args: argparse.Namespace) -> list[str]:
    problems = tag_problems(project, args.tag, args.repository)
    problems += changelog_problems(project_module.CHANGELOG.read_text(encoding="utf-8"), project.version,
                                   released=True)  # fmt: skip
    core = first_party_version(CORE_INIT)
    if core != project.version:
        problems.append(f"rotation_core.__version__ is {core}, pyproject.toml says {project.version}")
    if not problems:
        print(f"release {args.tag}: version, changelog and repository agree")
    return problems


def _release_sizes(project: Project, args: argparse.Namespace) -> list[str]:
    from rotation_release.docs import record_sizes

    try:
        path = record_sizes(args.dist.resolve())
    except (ReleaseError, OSError, ValueError) as error:
        return [f"release-sizes: {error}"]
    print(f"release-sizes: wrote {path.relative_to(REPO_ROOT)} and the docs' size blocks")
    return []


def _architecture(project: Project, args: argparse.Namespace) -> list[str]:
    from rotation_release.deploy import ConfigError, deploy_architecture

    try:
        print(deploy_architecture(args.config_env))
    except ConfigError as error:
        return [f"architecture: {error}"]
    return []


def _pin_build(project: Project, args: argparse.Namespace) -> list[str]:
    from rotation_release.deploy import pin_build

    try:
        pin_build(args.build_dir, args.architecture)
    except ReleaseError as error:
        return [f"pin-build: {error}"]
    return []


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m rotation_release", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    artifacts = commands.add_parser("artifacts", help="write the release files from one sam build per architecture")
    artifacts.add_argument("--build", action="append", required=True, metavar="ARCH=DIR",
                           help="a sam build folder and its architecture (both arm64 and x86_64)")  # fmt: skip
    artifacts.add_argument("--dist", type=Path, default=REPO_ROOT / "dist")
    metadata = commands.add_parser("check-metadata", help="SAR metadata of template.yaml (and the release templates)")
    metadata.add_argument("--dist", type=Path, help="also check the release templates in this folder")
    workflows = commands.add_parser("check-workflows", help="actions pinned to commits, installs hash-locked")
    workflows.add_argument("paths", nargs="*", type=Path)
    release = commands.add_parser("check-release", help="may this tag be released from this repository?")
    release.add_argument("--tag", required=True)
    release.add_argument("--repository", help="the repository's URL (https://github.com/OWNER/NAME)")
    notes = commands.add_parser("notes", help="print the CHANGELOG.md section of a version (release notes)")
    notes.add_argument("version", nargs="?")
    commands.add_parser("version", help="print the version")
    subset = commands.add_parser("lock-subset", help="print the entries (with hashes) of some packages of a lock")
    subset.add_argument("lock", type=Path)
    subset.add_argument("packages", nargs="+")
    sizes = commands.add_parser("release-sizes", help="measure dist/ into docs/figures/release-sizes.json and the docs")
    sizes.add_argument("--dist", type=Path, default=REPO_ROOT / "dist")
    arch = commands.add_parser("architecture", help="the Architecture samconfig.toml deploys for an environment")
    arch.add_argument("--config-env", default="default")
    pin = commands.add_parser("pin-build", help="check a sam build's compiled files and fix its Architecture to them")
    pin.add_argument("build_dir", type=Path)
    pin.add_argument("--architecture", required=True, choices=ARCHITECTURES)
    args = parser.parse_args(argv)

    handlers: dict[str, Callable[[Project, argparse.Namespace], list[str]]] = {
        "version": _version, "lock-subset": _lock_subset, "notes": _notes, "artifacts": _artifacts,
        "check-metadata": lambda project, args: _check_metadata(args.dist), "check-workflows": _workflows,
        "check-release": _release, "release-sizes": _release_sizes, "architecture": _architecture,
        "pin-build": _pin_build,
    }  # fmt: skip
    problems = handlers[args.command](project_module.load(), args)
    for problem in problems:
        print(problem, file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
