"""The release files, made from the `sam build` output of each architecture (``make release-artifacts``).

``dist/`` (gitignored) receives, for version V and project name N:

- ``N-V-layer.zip``: the layer (pure Python, one zip for both architectures: the two builds must be
  identical, or the release stops);
- ``N-V-<arch>-<code>.zip``: each function folder's build (postgres, mysql, api-key) per architecture;
  functions that share a folder share the zip (their builds must be identical); compiled modules must
  be ELF files of that architecture;
- ``N-V-<arch>.template.yaml``: the SAR-ready template of that architecture, whose CodeUri/ContentUri
  name the zips above, with ``LICENSE`` and ``README.md`` beside it for its LicenseUrl/ReadmeUrl;
- ``N-V.cdx.json``: the SBOM (:mod:`rotation_release.sbom`);
- ``SHA256SUMS``: every file above.

The x86_64 build is the one the built-artifact tests run (``.aws-sam/build``), so those tests exercise
the bytes that ship; tests/integration/test_release_artifacts.py checks that the zips hold exactly it.
"""

from __future__ import annotations

import datetime
import json
import os
import shutil
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from rotation_core.registry import rotation_functions
from rotation_local.template import ReleaseLayout, render_template
from rotation_release import sbom
from rotation_release.files import ReleaseError, elf_files, sha256_file, tree_digest, write_sha256sums, write_zip
from rotation_release.project import REPO_ROOT, Project
from rotation_release.sar import ARCHITECTURES

LAYER = "RotationCoreLayer"
LAYER_REQUIREMENTS = REPO_ROOT / "layers" / "rotation_core" / "requirements.txt"


@dataclass(frozen=True)
class Names:
    """The file names of one release."""

    project: Project

    @property
    def prefix(self) -> str:
        return f"{self.project.name}-{self.project.version}"

    @property
    def layer(self) -> str:
        return f"{self.prefix}-layer.zip"

    def function(self, architecture: str, folder: str) -> str:
        return f"{self.prefix}-{architecture}-{folder.replace('_', '-')}.zip"

    def template(self, architecture: str) -> str:
        return f"{self.prefix}-{architecture}.template.yaml"

    @property
    def sbom(self) -> str:
        return f"{self.prefix}.cdx.json"


def function_folders() -> dict[str, list[str]]:
    """Function folder -> the template's logical ids of the functions built from it."""
    folders: dict[str, list[str]] = {}
    for function in rotation_functions():
        folders.setdefault(function.folder, []).append(function.logical_name + "Function")
    return folders


def _same_builds(label: str, folders: Mapping[str, Path]) -> Path:
    """The first folder, after checking every folder holds the same files (same bytes, same permissions)."""
    digests = {name: tree_digest(path) for name, path in folders.items()}
    first_name, first = next(iter(digests.items()))
    if not first:
        raise ReleaseError(f"{label}: {folders[first_name]} is empty")
    for name, digest in digests.items():
        if digest != first:
            differing = sorted(set(digest.items()) ^ set(first.items()))[:5]
            raise ReleaseError(f"{label}: the builds {first_name} and {name} differ ({differing})")
    return folders[first_name]


def _check_architecture(folder: Path, architecture: str) -> None:
    wrong = [f"{path} ({found or 'unknown machine'})" for path, found in elf_files(folder) if found != architecture]
    if wrong:
        raise ReleaseError(f"{folder}: compiled files not built for {architecture}: {', '.join(wrong[:5])}")


def source_date(repo: Path = REPO_ROOT) -> datetime.datetime | None:
    """SOURCE_DATE_EPOCH, else the commit time of HEAD, else None (no timestamp in the SBOM)."""
    epoch = os.environ.get("SOURCE_DATE_EPOCH")
    if not epoch:
        completed = subprocess.run(
            ["git", "-C", str(repo), "log", "-1", "--format=%ct"], capture_output=True, text=True, check=False
        )
        epoch = completed.stdout.strip() if completed.returncode == 0 else ""
    return datetime.datetime.fromtimestamp(int(epoch), datetime.UTC) if epoch.isdigit() else None


def make_release(project: Project, builds: Mapping[str, Path], dist: Path) -> list[Path]:
    """Write the release files into ``dist`` (emptied first) from one build per architecture."""
    if set(builds) != set(ARCHITECTURES):
        raise ReleaseError(f"one build per architecture is needed ({', '.join(ARCHITECTURES)}), got {sorted(builds)}")
    names = Names(project)
    if dist.exists():
        shutil.rmtree(dist)
    dist.mkdir(parents=True)

    layer = _same_builds("the layer", {arch: build / LAYER for arch, build in builds.items()})
    for arch in builds:
        _check_architecture(builds[arch] / LAYER, arch)  # pure Python: no ELF file at all passes
    layer_packages = sbom.check_against_pins(layer / "python", LAYER_REQUIREMENTS)
    core_version = sbom.first_party_version(layer / "python" / "rotation_core" / "__init__.py")
    if core_version != project.version:
        raise ReleaseError(f"the built rotation_core is {core_version}, pyproject.toml says {project.version}")
    write_zip(layer, dist / names.layer)
    zips = [
        sbom.ShippedZip(
            names.layer, sha256_file(dist / names.layer), "layer", "layers/rotation_core", tuple(builds),
            tuple(layer_packages), (("rotation_core", core_version),), (LAYER,),
        )
    ]  # fmt: skip

    for arch, build in builds.items():
        function_zips = {}
        for folder, logical_ids in function_folders().items():
            built = _same_builds(f"functions/{folder} ({arch})", {name: build / name for name in logical_ids})
            _check_architecture(built, arch)
            packages = sbom.check_against_pins(built, REPO_ROOT / "functions" / folder / "requirements.txt")
            name = names.function(arch, folder)
            write_zip(built, dist / name)
            function_zips[folder] = name
            zips.append(sbom.ShippedZip(name, sha256_file(dist / name), "function", f"functions/{folder}", (arch,),
                                        tuple(packages), (), tuple(logical_ids)))  # fmt: skip
        layout = ReleaseLayout(arch, names.layer, function_zips)
        (dist / names.template(arch)).write_text(render_template(layout), encoding="utf-8")

    for document in ("LICENSE", "README.md"):
        shutil.copyfile(REPO_ROOT / document, dist / document)
    others = [sbom.OtherFile(names.template(a), sha256_file(dist / names.template(a)),
                             f"SAR-ready template, {a}") for a in builds]  # fmt: skip
    others += [sbom.OtherFile(d, sha256_file(dist / d), "SAR LicenseUrl/ReadmeUrl") for d in ("LICENSE", "README.md")]
    bom = sbom.document(project, zips, others, source_date())
    (dist / names.sbom).write_text(json.dumps(bom, indent=2) + "\n", encoding="utf-8")
    shipped = sorted(p.name for p in dist.iterdir())
    return [*(dist / n for n in shipped), write_sha256sums(dist, shipped)]
