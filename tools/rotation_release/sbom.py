"""The release's SBOM (CycloneDX 1.6 JSON), made from the hash-pinned requirements and the built folders.

Every zip that ships is a ``file`` component with its SHA-256. Every Python distribution inside it (a
``*.dist-info`` folder in the built folder) is a ``library`` component with its PyPI purl, and must be
exactly what the folder's requirements file pins, with hashes: a package in the build that the file
does not pin, at another version, or without a hash, and a pinned package missing from the build, all
stop the release. ``rotation_core`` (first party, in the layer) is listed at the project's version.
"""

from __future__ import annotations

import datetime
import email.parser
import re
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rotation_release.files import ReleaseError
from rotation_release.project import Project

SPEC_VERSION = "1.6"
_PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)(?:\[[^\]]*\])?==([^\s;\\]+)")
_VERSION_ASSIGNMENT = re.compile(r'^__version__ = "([^"]+)"$', re.MULTILINE)
_SERIAL_NAMESPACE = uuid.UUID("6b4f3bd1-6a43-4bd2-9d54-3b1f8c1e2a70")  # fixed: the same release, the same serial
PROPERTY = "secrets-rotation"  # prefix of this project's CycloneDX properties


def normalize(name: str) -> str:
    """PEP 503's normalized project name (PyMySQL, pymysql and py_mysql compare equal)."""
    return re.sub(r"[-_.]+", "-", name).lower()


def requirement_entries(path: Path) -> list[list[str]]:
    """The requirements of a pip-compile file, each as its lines (comments dropped)."""
    entries: list[list[str]] = []
    for line in path.read_text(encoding="utf-8").splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        if line.startswith((" ", "\t")) and entries:
            entries[-1].append(stripped)
        else:
            entries.append([stripped])
    return entries


def lock_entries(path: Path, names: Iterable[str]) -> str:
    """The entries (requirement and hashes) of ``names`` in a hash lock, as a requirements file."""
    wanted = {normalize(name) for name in names}
    found = {}
    for entry in requirement_entries(path):
        match = _PIN.match(entry[0])
        if match and normalize(match.group(1)) in wanted:
            found[normalize(match.group(1))] = "\n    ".join(part for part in entry) + "\n"
    missing = sorted(wanted - set(found))
    if missing:
        raise ReleaseError(f"{path} does not pin {', '.join(missing)}")
    return "".join(found[name] for name in sorted(found))


def hashed_pins(path: Path) -> dict[str, str]:
    """Normalized name -> version of every requirement in a pip-compile --generate-hashes file.

    A requirement without ``==`` or without a ``--hash`` is an error: everything that ships is pinned.
    """
    pins = {}
    for entry in requirement_entries(path):
        match = _PIN.match(entry[0])
        if match is None:
            raise ReleaseError(f"{path}: {entry[0]!r} is not pinned with ==")
        if not any("--hash=sha256:" in part for part in entry):
            raise ReleaseError(f"{path}: {match.group(1)} has no --hash")
        pins[normalize(match.group(1))] = match.group(2)
    return pins


@dataclass(frozen=True)
class Distribution:
    name: str  # as the distribution spells it
    version: str
    license: dict[str, Any] | None  # a CycloneDX license choice
    wheel_tags: tuple[str, ...]
    bundled_libraries: tuple[str, ...]  # shared libraries vendored by the wheel (auditwheel's <name>.libs)

    @property
    def purl(self) -> str:
        return f"pkg:pypi/{normalize(self.name)}@{self.version}"

    @property
    def bom_ref(self) -> str:
        """The purl; for a platform wheel (compiled code) also its platform, so each build has its own."""
        platforms = sorted({tag.rsplit("-", 1)[-1] for tag in self.wheel_tags} - {"any"})
        return self.purl if not platforms else f"{self.purl}#{'.'.join(platforms)}"


def _license(metadata: Mapping[str, str]) -> dict[str, Any] | None:
    expression = metadata.get("License-Expression")
    if expression:
        return {"expression": expression.strip()}
    text = (metadata.get("License") or "").strip()
    if text and "\n" not in text and len(text) <= 100:
        return {"license": {"name": text}}
    return None


def distributions(folder: Path) -> list[Distribution]:
    """The Python distributions installed in a built folder (its ``*.dist-info`` folders)."""
    found = []
    for info in sorted(folder.glob("*.dist-info")):
        metadata = email.parser.Parser().parsestr((info / "METADATA").read_text(encoding="utf-8"), headersonly=True)
        wheel = info / "WHEEL"
        tags: tuple[str, ...] = ()
        if wheel.exists():
            parsed = email.parser.Parser().parsestr(wheel.read_text(encoding="utf-8"), headersonly=True)
            tags = tuple(parsed.get_all("Tag") or ())
        name = metadata["Name"]
        libs = folder / f"{name.replace('-', '_')}.libs"
        bundled = tuple(sorted(p.name for p in libs.iterdir())) if libs.is_dir() else ()
        found.append(Distribution(name, metadata["Version"], _license(dict(metadata.items())), tags, bundled))
    return found


def first_party_version(package_init: Path) -> str:
    match = _VERSION_ASSIGNMENT.search(package_init.read_text(encoding="utf-8"))
    if match is None:
        raise ReleaseError(f"{package_init}: no __version__ assignment")
    return match.group(1)


def check_against_pins(folder: Path, requirements: Path) -> list[Distribution]:
    """The folder's distributions, after checking they are exactly the hash-pinned requirements."""
    pins = hashed_pins(requirements)
    installed = distributions(folder)
    found = {normalize(d.name): d.version for d in installed}
    problems = [
        f"{name} {version} is in the build but {requirements} pins {pins[name]}"
        if name in pins
        else f"{name} {version} is in the build but not pinned in {requirements}"
        for name, version in sorted(found.items())
        if pins.get(name) != version
    ]
    problems += [f"{name}=={version} is pinned in {requirements} but not in the build" for name, version in
                 sorted(pins.items()) if name not in found]  # fmt: skip
    if problems:
        raise ReleaseError(f"{folder}: " + "; ".join(problems))
    return installed


@dataclass(frozen=True)
class ShippedZip:
    """A zip of the release and what went into it."""

    file: str
    sha256: str
    kind: str  # "layer" or "function"
    code: str  # the source folder: layers/rotation_core, functions/postgres, ...
    architectures: tuple[str, ...]
    distributions: tuple[Distribution, ...]
    first_party: tuple[tuple[str, str], ...] = ()  # (package, version) of our own packages inside
    functions: tuple[str, ...] = field(default=())  # the template's logical ids that run this zip


@dataclass(frozen=True)
class OtherFile:
    file: str
    sha256: str
    description: str


def _properties(pairs: Iterable[tuple[str, str]]) -> list[dict[str, str]]:
    return [{"name": f"{PROPERTY}:{name}", "value": value} for name, value in pairs]


def document(
    project: Project, zips: Sequence[ShippedZip], others: Sequence[OtherFile], timestamp: datetime.datetime | None
) -> dict[str, Any]:
    """The CycloneDX document. Same inputs, same document (the serial number is derived from them)."""
    root_ref = f"{project.name}@{project.version}"
    components: list[dict[str, Any]] = []
    dependencies: list[dict[str, Any]] = []
    libraries: dict[str, dict[str, Any]] = {}
    for shipped in zips:
        file_ref = f"file:{shipped.file}"
        pairs = [("kind", shipped.kind), ("code", shipped.code)]
        pairs += [("architecture", a) for a in shipped.architectures] + [("function", f) for f in shipped.functions]
        components.append({
            "type": "file", "bom-ref": file_ref, "name": shipped.file,
            "hashes": [{"alg": "SHA-256", "content": shipped.sha256}], "properties": _properties(pairs),
        })  # fmt: skip
        refs = []
        for package, version in shipped.first_party:
            ref = f"{package}@{version}"
            libraries.setdefault(ref, {
                "type": "library", "bom-ref": ref, "name": package, "version": version,
                "description": "first-party code of this project",
                "licenses": [{"license": {"id": project.license}}],
            })  # fmt: skip
            refs.append(ref)
        for dist in shipped.distributions:
            extra = [("wheel-tag", t) for t in dist.wheel_tags] + [
                ("bundled-library", b) for b in dist.bundled_libraries
            ]
            libraries.setdefault(dist.bom_ref, {
                "type": "library", "bom-ref": dist.bom_ref, "name": dist.name, "version": dist.version,
                "purl": dist.purl, **({"licenses": [dist.license]} if dist.license else {}),
                "properties": _properties(extra),
            })  # fmt: skip
            refs.append(dist.bom_ref)
        dependencies.append({"ref": file_ref, "dependsOn": sorted(set(refs))})
    for other in others:
        components.append({
            "type": "file", "bom-ref": f"file:{other.file}", "name": other.file, "description": other.description,
            "hashes": [{"alg": "SHA-256", "content": other.sha256}],
        })  # fmt: skip
    for entry in libraries.values():
        if not entry.get("properties"):
            entry.pop("properties", None)
    components += [libraries[ref] for ref in sorted(libraries)]
    dependencies.insert(0, {"ref": root_ref, "dependsOn": sorted(f"file:{z.file}" for z in zips)})
    metadata: dict[str, Any] = {
        "tools": {"components": [{"type": "application", "name": "rotation_release.sbom", "version": project.version}]},
        "component": {
            "type": "application", "bom-ref": root_ref, "name": project.name, "version": project.version,
            "description": project.description, "licenses": [{"license": {"id": project.license}}],
            "externalReferences": [{"type": "vcs", "url": project.repository}],
        },
    }  # fmt: skip
    if timestamp is not None:
        metadata = {"timestamp": timestamp.astimezone(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"), **metadata}
    seed = (
        root_ref + "".join(f"\n{z.file} {z.sha256}" for z in zips) + "".join(f"\n{o.file} {o.sha256}" for o in others)
    )
    return {
        "bomFormat": "CycloneDX",
        "specVersion": SPEC_VERSION,
        "serialNumber": f"urn:uuid:{uuid.uuid5(_SERIAL_NAMESPACE, seed)}",
        "version": 1,
        "metadata": metadata,
        "components": components,
        "dependencies": dependencies,
    }
