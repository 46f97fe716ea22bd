"""``AWS::ServerlessRepo::Application``: the SAR metadata of the templates, and its offline check.

The values come from :mod:`rotation_release.project` (pyproject.toml). A release publishes one SAR
application per architecture (``<name>-arm64``, ``<name>-x86-64``: a SAR application version carries
built code, and the database drivers are compiled for one architecture); the source template.yaml
carries the plain name. The limits are SAR's (CreateApplication / the SAM metadata reference).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from rotation_release.project import Project, is_semver

METADATA_KEY = "AWS::ServerlessRepo::Application"
ARCHITECTURES = ("arm64", "x86_64")
REQUIRED = ("Name", "Description", "Author", "SpdxLicenseId", "LicenseUrl", "ReadmeUrl", "SemanticVersion",
            "SourceCodeUrl")  # fmt: skip
OPTIONAL = ("HomePageUrl", "Labels")
_NAME = re.compile(r"[a-zA-Z0-9-]{1,140}")
_AUTHOR = re.compile(r"[a-z0-9](?:[a-z0-9]|-(?!-))*[a-z0-9]|[a-z0-9]")
_LABEL = re.compile(r"[a-zA-Z0-9+\-_:/@]{1,127}")
_MAX_FILE_BYTES = 5 * 1024 * 1024
_MAX_LABELS = 10


def application_name(project: Project, architecture: str | None = None) -> str:
    """The SAR application's name; per architecture for releases (SAR names allow no underscore)."""
    return project.name if architecture is None else f"{project.name}-{architecture.replace('_', '-')}"


def sar_author(project: Project) -> str:
    """pyproject's first author as SAR accepts it (lower case, digits and single hyphens)."""
    return re.sub(r"-{2,}", "-", re.sub(r"[^a-z0-9]+", "-", project.author.lower())).strip("-")


def application_metadata(project: Project, architecture: str | None = None) -> dict[str, Any]:
    """The metadata, in the order the templates list it."""
    description = project.description
    if architecture is not None:
        description += f" ({architecture} build)"
    return {
        "Name": application_name(project, architecture),
        "Description": description,
        "Author": sar_author(project),
        "SpdxLicenseId": project.license,
        "LicenseUrl": "LICENSE",
        "ReadmeUrl": "README.md",
        "Labels": list(project.keywords),
        "HomePageUrl": project.repository,
        "SemanticVersion": project.version,
        "SourceCodeUrl": project.source_url,
    }


def metadata_problems(
    metadata: Mapping[str, Any], project: Project, *, template_dir: Path, architecture: str | None = None
) -> list[str]:
    """What keeps ``metadata`` from being published as ``project`` (empty: nothing).

    Checks presence, SAR's limits, agreement with pyproject.toml (version, licence, URLs, name), and
    that LicenseUrl and ReadmeUrl name files next to the template, as `sam package` needs them.
    """
    problems = [f"{key} is missing" for key in REQUIRED if not metadata.get(key)]
    unknown = sorted(set(metadata) - set(REQUIRED) - set(OPTIONAL))
    problems += [f"{key} is not a SAR metadata property this project uses" for key in unknown]
    for key, value in metadata.items():
        if isinstance(value, dict):
            problems.append(f"{key}: intrinsic functions are not supported in SAR metadata")
    name, author = str(metadata.get("Name", "")), str(metadata.get("Author", ""))
    if name and not _NAME.fullmatch(name):
        problems.append(f"Name {name!r}: 1-140 letters, digits and hyphens")
    if author and (len(author) > 127 or not _AUTHOR.fullmatch(author)):
        problems.append(f"Author {author!r}: 1-127 lower-case letters, digits and single hyphens, not at the ends")
    description = str(metadata.get("Description", ""))
    if len(description) > 256:
        problems.append(f"Description: {len(description)} characters, SAR allows 256")
    labels = metadata.get("Labels", [])
    if not isinstance(labels, list) or len(labels) > _MAX_LABELS:
        problems.append(f"Labels: a list of at most {_MAX_LABELS}")
    else:
        problems += [f"Labels: {label!r} is not a valid label" for label in labels if not _LABEL.fullmatch(str(label))]
    version = str(metadata.get("SemanticVersion", ""))
    if version and not is_semver(version):
        problems.append(f"SemanticVersion {version!r} is not a semantic version")
    expected = application_metadata(project, architecture)
    for key in ("Name", "SemanticVersion", "SpdxLicenseId", "SourceCodeUrl", "HomePageUrl", "Author"):
        if key in metadata and metadata[key] != expected[key]:
            problems.append(f"{key} is {metadata[key]!r}; pyproject.toml makes it {expected[key]!r}")
    for key in ("LicenseUrl", "ReadmeUrl"):
        value = str(metadata.get(key, ""))
        if not value or value.startswith("s3://"):
            continue  # missing (reported above), or already packaged
        path = template_dir / value
        if not path.is_file():
            problems.append(f"{key} {value!r}: no such file next to the template ({path})")
        elif path.stat().st_size > _MAX_FILE_BYTES:
            problems.append(f"{key} {value!r}: larger than SAR's 5 MB")
    return problems
