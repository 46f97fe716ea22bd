"""The project's identity, read from ``pyproject.toml``: the one source of the version.

``[project] version`` is the version of everything: ``rotation_core.__version__`` (a test keeps the
two equal, since the layer cannot read pyproject.toml in Lambda), the SAR metadata of the generated
templates, the release artifacts' names, the SBOM, and the tag a release is built from (``v`` +
version, checked by the release workflow). ``CHANGELOG.md`` must have a section for it.
"""

from __future__ import annotations

import datetime
import re
import tomllib
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
PYPROJECT = REPO_ROOT / "pyproject.toml"
CHANGELOG = REPO_ROOT / "CHANGELOG.md"

# Semantic Versioning 2.0.0 (https://semver.org), the form SAR's SemanticVersion takes.
SEMVER = re.compile(
    r"(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)"
    r"(?:-((?:0|[1-9]\d*|\d*[A-Za-z-][0-9A-Za-z-]*)(?:\.(?:0|[1-9]\d*|\d*[A-Za-z-][0-9A-Za-z-]*))*))?"
    r"(?:\+([0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*))?"
)
_RELEASE_HEADING = re.compile(r"^## \[(?P<version>[^\]]+)\](?: - (?P<date>\S+))?\s*$", re.MULTILINE)


@dataclass(frozen=True)
class Project:
    name: str
    version: str
    description: str
    license: str  # an SPDX identifier
    author: str
    keywords: tuple[str, ...]
    repository: str  # https URL of the source repository, no trailing slash

    @property
    def tag(self) -> str:
        return f"v{self.version}"

    @property
    def source_url(self) -> str:
        """The source tree of this version (the tag)."""
        return f"{self.repository}/tree/{self.tag}"


def load(path: Path = PYPROJECT) -> Project:
    data = tomllib.loads(path.read_text(encoding="utf-8"))
    project = data["project"]
    license_value = project["license"]
    if not isinstance(license_value, str):
        raise ValueError(f"{path.name}: [project] license must be an SPDX expression string, not {license_value!r}")
    authors = project.get("authors") or []
    if not authors or "name" not in authors[0]:
        raise ValueError(f"{path.name}: [project] authors needs a name (the SAR author is derived from it)")
    repository = str(project.get("urls", {}).get("Source", "")).rstrip("/")
    if not repository.startswith("https://"):
        raise ValueError(f"{path.name}: [project.urls] Source must be the repository's https URL")
    return Project(
        name=str(project["name"]),
        version=str(project["version"]),
        description=str(project["description"]),
        license=license_value,
        author=str(authors[0]["name"]),
        keywords=tuple(str(k) for k in project.get("keywords", ())),
        repository=repository,
    )


def is_semver(version: str) -> bool:
    return SEMVER.fullmatch(version) is not None


@dataclass(frozen=True)
class ChangelogRelease:
    version: str
    date: datetime.date | None  # None: "Unreleased" (the section is being written)
    body: str


def changelog_releases(text: str) -> list[ChangelogRelease]:
    """The version sections of a Keep a Changelog file, newest first (the [Unreleased] section excluded)."""
    headings = list(_RELEASE_HEADING.finditer(text))
    releases = []
    for index, heading in enumerate(headings):
        version = heading["version"]
        if version.lower() == "unreleased":
            continue
        end = headings[index + 1].start() if index + 1 < len(headings) else len(text)
        body = text[heading.end() : end]
        body = re.split(r"^\[[^\]]+\]: ", body, maxsplit=1, flags=re.MULTILINE)[0].strip()
        raw_date = heading["date"]
        date = None
        if raw_date is not None and raw_date.lower() != "unreleased":
            date = datetime.date.fromisoformat(raw_date)
        releases.append(ChangelogRelease(version, date, body))
    return releases


def changelog_problems(text: str, version: str, *, released: bool) -> list[str]:
    """What is wrong with the changelog for ``version`` (empty: nothing).

    The newest version section must be ``version``; for a release (``released``) it must carry its
    date and say something.
    """
    try:
        releases = changelog_releases(text)
    except ValueError as error:
        return [f"CHANGELOG.md: a release heading has no ISO date ({error})"]
    if not releases:
        return ["CHANGELOG.md has no '## [X.Y.Z] - YYYY-MM-DD' section"]
    newest = releases[0]
    problems = []
    if newest.version != version:
        problems.append(f"CHANGELOG.md: the newest section is {newest.version}, the version is {version}")
    if released and newest.date is None:
        problems.append(f"CHANGELOG.md: the {newest.version} section has no release date (## [{version}] - YYYY-MM-DD)")
    if released and not newest.body:
        problems.append(f"CHANGELOG.md: the {newest.version} section is empty")
    seen = [r.version for r in releases]
    if len(seen) != len(set(seen)):
        problems.append("CHANGELOG.md: a version has two sections")
    return problems


def tag_problems(project: Project, tag: str, repository: str | None = None) -> list[str]:
    """Why ``tag`` (and the repository the release runs in) cannot be released as ``project`` (empty: it can)."""
    problems = []
    if not is_semver(project.version):
        problems.append(f"pyproject.toml: version {project.version!r} is not a semantic version")
    if tag != project.tag:
        problems.append(
            f"the tag {tag!r} does not name the version: pyproject.toml says {project.version}, tag {project.tag}"
        )
    if repository is not None and repository.rstrip("/") != project.repository:
        problems.append(
            f"pyproject.toml [project.urls] Source is {project.repository}, but the release runs in {repository}: "
            "set Source to this repository (the SAR metadata's URLs come from it) and run `make template`"
        )
    return problems
