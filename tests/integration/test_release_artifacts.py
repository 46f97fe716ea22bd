"""`make release-artifacts` (dist/): the zips are the build the built-artifact tests rotate with, the
SBOM lists every shipped package at its hash-pinned version, SHA256SUMS matches, the templates name the
zips.

dist/ is made once if it is missing or older than the build (`.ci/template-checks.sh release`, what
`make release-artifacts` runs); CI makes it in `.ci/template-checks.sh` before the tests. Like the
built-artifact tests, these are skipped only outside CI on a machine without Python 3.13.
"""

from __future__ import annotations

import hashlib
import json
import re
import subprocess
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from cloudformation import load
from helpers import REPO_ROOT
from integration.built import BUILD_DIR, Build
from pins import pins
from rotation_core.registry import rotation_functions
from rotation_release import project as project_module
from rotation_release.artifacts import Names
from rotation_release.files import write_zip
from rotation_release.sar import ARCHITECTURES, METADATA_KEY, metadata_problems

DIST = REPO_ROOT / "dist"
PROJECT = project_module.load()
NAMES = Names(PROJECT)
FOLDERS = sorted({f.folder for f in rotation_functions()})
ELF = {62: "x86_64", 183: "arm64"}


def _stale() -> str | None:
    sums = DIST / "SHA256SUMS"
    if not sums.exists():
        return "no dist/SHA256SUMS"
    if not (DIST / NAMES.layer).exists():
        return f"no dist/{NAMES.layer} (another version?)"
    if (BUILD_DIR / "template.yaml").stat().st_mtime > sums.stat().st_mtime:
        return "the build is newer than dist/"
    return None


@pytest.fixture(scope="module")
def dist(build: Build) -> Path:
    reason = _stale()
    if reason is not None:
        completed = subprocess.run(
            ["bash", str(REPO_ROOT / ".ci" / "template-checks.sh"), "release"],
            cwd=REPO_ROOT, capture_output=True, text=True, timeout=1200, check=False,
        )  # fmt: skip
        if completed.returncode != 0 or _stale() is not None:
            pytest.fail(f"dist/ is stale ({reason}) and `make release-artifacts` failed:\n{completed.stderr[-3000:]}")
    return DIST


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _zip_files(path: Path) -> dict[str, bytes]:
    with zipfile.ZipFile(path) as archive:
        return {info.filename: archive.read(info) for info in archive.infolist() if not info.is_dir()}


def _folder_files(root: Path) -> dict[str, bytes]:
    return {
        p.relative_to(root).as_posix(): p.read_bytes()
        for p in root.rglob("*")
        if p.is_file() and "__pycache__" not in p.parts and p.suffix != ".pyc"
    }


def _elf_machine(data: bytes) -> str | None:
    if data[:4] != b"\x7fELF":
        return None
    return ELF.get(int.from_bytes(data[18:20], "little" if data[5] == 1 else "big"), "other")


def _built_functions(folder: str) -> Iterator[str]:
    return (f.logical_name + "Function" for f in rotation_functions() if f.folder == folder)


def test_release_sha256sums_cover_every_file_and_match(dist: Path) -> None:
    sums = dict(reversed(line.split("  ", 1)) for line in (dist / "SHA256SUMS").read_text().splitlines())

    assert set(sums) == {p.name for p in dist.iterdir()} - {"SHA256SUMS"}
    assert {name: _sha256((dist / name).read_bytes()) for name in sums} == sums
    expected = {NAMES.layer, NAMES.sbom, "LICENSE", "README.md"}
    expected |= {NAMES.function(a, f) for a in ARCHITECTURES for f in FOLDERS}
    expected |= {NAMES.template(a) for a in ARCHITECTURES}
    assert set(sums) == expected


def test_release_x86_64_zips_hold_exactly_the_tested_build(dist: Path) -> None:
    # The built-artifact tests rotate with .aws-sam/build: these are its bytes, file for file.
    assert _zip_files(dist / NAMES.layer) == _folder_files(BUILD_DIR / "RotationCoreLayer")
    for folder in FOLDERS:
        shipped = _zip_files(dist / NAMES.function("x86_64", folder))
        for built in _built_functions(folder):
            assert shipped == _folder_files(BUILD_DIR / built), built
        assert shipped["app.py"] == (REPO_ROOT / "functions" / folder / "app.py").read_bytes()


def test_release_zips_lambda_permissions_and_reproducible(dist: Path, tmp_path: Path) -> None:
    with zipfile.ZipFile(dist / NAMES.function("x86_64", "postgres")) as archive:
        modes = {(info.external_attr >> 16) & 0o777 for info in archive.infolist()}
    assert modes <= {0o644, 0o755}

    write_zip(BUILD_DIR / "PostgresSingleUserFunction", tmp_path / "again.zip")

    assert _sha256((tmp_path / "again.zip").read_bytes()) == _sha256(
        (dist / NAMES.function("x86_64", "postgres")).read_bytes()
    )


def test_release_compiled_files_match_their_architecture_python_files_identical(dist: Path) -> None:
    for folder in FOLDERS:
        zips = {arch: _zip_files(dist / NAMES.function(arch, folder)) for arch in ARCHITECTURES}
        for arch, files in zips.items():
            machines = {name: _elf_machine(data) for name, data in files.items() if _elf_machine(data)}
            assert set(machines.values()) <= {arch}, (folder, arch, machines)
            if folder == "postgres":
                assert any(name.startswith("psycopg2/_psycopg.cpython-313-") for name in machines)
        python = [{n: d for n, d in files.items() if n.endswith(".py")} for files in zips.values()]
        assert python[0] == python[1], folder
    assert not [n for n, d in _zip_files(dist / NAMES.layer).items() if _elf_machine(d)]


_DIST_INFO = re.compile(r"^(?:python/)?([^/]+)-([^/-]+)\.dist-info/METADATA$")


def _zip_packages(path: Path) -> set[tuple[str, str]]:
    found = set()
    for name in _zip_files(path):
        match = _DIST_INFO.match(name)
        if match:
            found.add((re.sub(r"[-_.]+", "-", match.group(1)).lower(), match.group(2)))
    return found


def _requirements(code: str) -> Path:
    return REPO_ROOT / code / "requirements.txt"


def test_release_sbom_lists_every_shipped_package_at_its_pinned_version(dist: Path) -> None:
    bom: dict[str, Any] = json.loads((dist / NAMES.sbom).read_text())
    components = {c["bom-ref"]: c for c in bom["components"]}
    depends = {d["ref"]: d["dependsOn"] for d in bom["dependencies"]}
    files = {c["name"]: c for c in bom["components"] if c["type"] == "file"}
    lines = (dist / "SHA256SUMS").read_text().splitlines()
    sums = {name: digest for digest, name in (line.split("  ", 1) for line in lines)}

    assert (bom["bomFormat"], bom["specVersion"], bom["version"]) == ("CycloneDX", "1.6", 1)
    assert re.fullmatch(r"urn:uuid:[0-9a-f-]{36}", bom["serialNumber"])
    assert bom["metadata"]["component"]["version"] == PROJECT.version
    assert set(files) == set(sums) - {NAMES.sbom}
    assert {name: c["hashes"] for name, c in files.items()} == {
        name: [{"alg": "SHA-256", "content": sums[name]}] for name in files
    }
    zips = [name for name in files if name.endswith(".zip")]
    assert len(zips) == 1 + len(ARCHITECTURES) * len(FOLDERS)
    for name in zips:
        code = next(p["value"] for p in files[name]["properties"] if p["name"] == "secrets-rotation:code")
        listed = {(components[ref]["name"], components[ref]["version"]) for ref in depends[f"file:{name}"]}
        listed_pypi = {(re.sub(r"[-_.]+", "-", n).lower(), v) for n, v in listed if n != "rotation_core"}
        pinned = set(pins(_requirements(code)).items())
        # What the SBOM says ships = what the zip holds = what the hash-pinned requirements ask for.
        assert listed_pypi == _zip_packages(dist / name) == pinned, name
        if code == "layers/rotation_core":
            assert ("rotation_core", PROJECT.version) in listed
    for ref in {r for refs in depends.values() for r in refs if r.startswith("pkg:")}:
        assert components[ref]["purl"] == f"pkg:pypi/{components[ref]['purl'].split('/', 1)[1]}"
        assert components[ref]["purl"].startswith(ref.split("#", 1)[0])


@pytest.mark.parametrize("architecture", ARCHITECTURES)
def test_release_template_names_the_release_zips_of_its_architecture(dist: Path, architecture: str) -> None:
    template = load(dist / NAMES.template(architecture))

    uris = {
        name: resource["Properties"].get("CodeUri") or resource["Properties"].get("ContentUri")
        for name, resource in template["Resources"].items()
        if resource["Type"] in ("AWS::Serverless::Function", "AWS::Serverless::LayerVersion")
    }
    assert uris.pop("RotationCoreLayer") == NAMES.layer
    assert uris == {
        built: NAMES.function(architecture, folder) for folder in FOLDERS for built in _built_functions(folder)
    }
    assert template["Parameters"]["Architecture"]["AllowedValues"] == [architecture]
    assert metadata_problems(template["Metadata"][METADATA_KEY], PROJECT, template_dir=dist,
                             architecture=architecture) == []  # fmt: skip
