"""The parts of docs/deploy.md and docs/releasing.md that come from the template and the release files.

Generated blocks (between ``<!-- name:start ... -->`` and ``<!-- name:end -->``, :mod:`rotation_local.figures`):

- ``boundary`` (deploy.md): what a permissions boundary must allow, read from the template's roles
  (:mod:`rotation_release.iam`);
- ``upgrade`` (deploy.md): what updating a 0.1.0 stack changes, from a comparison of the two templates
  (:mod:`rotation_release.compare`);
- ``release-sizes`` (releasing.md) and ``size-summary`` (deploy.md): the sizes of a release's files. The
  zips, the SBOM and SHA256SUMS are measured in ``dist/`` by ``python -m rotation_release release-sizes``
  (``make release-sizes`` after ``make release-artifacts``), which keeps them in
  ``docs/figures/release-sizes.json``; the templates and documents are measured as the generator writes
  them now, so a template change shows at once.

``python -m rotation_local template`` rewrites every block with the template; ``tests/unit/test_deploy_docs.py``
fails when one differs from what its sources render.
"""

from __future__ import annotations

import datetime
import json
import subprocess
import zipfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from rotation_local.figures import block_in, replace_block
from rotation_local.template import ReleaseLayout, render_template
from rotation_release import compare, iam
from rotation_release import project as release_project
from rotation_release.artifacts import Names, function_folders
from rotation_release.cfn import load, loads
from rotation_release.files import ReleaseError
from rotation_release.project import REPO_ROOT
from rotation_release.sar import ARCHITECTURES

DOCS = REPO_ROOT / "docs"
SIZES_RECORD = DOCS / "figures" / "release-sizes.json"
_TEMPLATE_SOURCE = "template.yaml by `make template`"
_SIZES_SOURCE = "docs/figures/release-sizes.json (`make release-sizes`) and the generated templates, by `make template`"
LAMBDA_UNZIPPED_LIMIT = 250 * 1024 * 1024  # function code and all its layers, unzipped (Lambda quotas)


def _names() -> Names:
    return Names(release_project.load())


# --- sizes ----------------------------------------------------------------------------------------------------


def _key(file_name: str, prefix: str) -> str:
    """A release file's name without ``<name>-<version>-``: the record holds no version."""
    return file_name.removeprefix(prefix).lstrip("-.")


def measure_dist(dist: Path) -> dict[str, Any]:
    """The sizes of the release files in ``dist`` that a build makes (zips, SBOM, SHA256SUMS)."""
    names = _names()
    files: dict[str, dict[str, int]] = {}
    wanted = [names.layer, names.sbom, "SHA256SUMS"]
    wanted += [names.function(arch, folder) for arch in ARCHITECTURES for folder in function_folders()]
    for name in wanted:
        path = dist / name
        if not path.is_file():
            raise ReleaseError(f"{path} is missing: run `make release-artifacts` first")
        entry = {"bytes": path.stat().st_size}
        if name.endswith(".zip"):
            with zipfile.ZipFile(path) as archive:
                entry["unzipped_bytes"] = sum(info.file_size for info in archive.infolist())
        files[_key(name, names.prefix)] = entry
    commit = subprocess.run(["git", "-C", str(REPO_ROOT), "rev-parse", "--short", "HEAD"], capture_output=True,
                            text=True, check=False).stdout.strip()  # fmt: skip
    return {
        "version": names.project.version,
        "measured": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d"),
        "commit": commit or "?",
        "files": files,
    }


def template_sizes() -> dict[str, int]:
    """Bytes of each release template as the generator writes it now, and of the LICENSE."""
    names = _names()
    sizes = {}
    for arch in ARCHITECTURES:
        zips = {folder: names.function(arch, folder) for folder in function_folders()}
        text = render_template(ReleaseLayout(arch, names.layer, zips))
        sizes[_key(names.template(arch), names.prefix)] = len(text.encode("utf-8"))
    sizes["LICENSE"] = (REPO_ROOT / "LICENSE").stat().st_size
    return sizes


def _bytes(value: int) -> str:
    return f"{value:,}"


def _mb(value: int) -> str:
    return f"{value / 1e6:.1f} MB" if value >= 1e6 else f"{value / 1e3:.0f} kB"


def render_release_sizes(record: Mapping[str, Any]) -> str:
    """releasing.md's table: every release file, what it holds, its size."""
    names = _names()
    files: Mapping[str, Mapping[str, int]] = record["files"]
    live = template_sizes()
    n, v = names.project.name, "V"

    def zipped(key: str) -> str:
        entry = files[key]
        return f"{_bytes(entry['bytes'])} ({_bytes(entry['unzipped_bytes'])} unzipped)"

    lines = [
        f"For version V (`N` = `{n}`). The zips, the SBOM and SHA256SUMS as `make release-artifacts` wrote them "
        f"for {record['version']} on {record['measured']} (commit {record['commit']}); the templates and documents "
        "as this commit generates and holds them. Bytes:",
        "",
        "| file | what | size |",
        "|---|---|---|",
        f"| `N-{v}-layer.zip` | the layer: `python/rotation_core` and Powertools, pure Python, one zip for both "
        f"architectures (the release stops if the two builds differ) | {zipped('layer.zip')} |",
    ]
    for folder, functions in function_folders().items():
        dashed = folder.replace("_", "-")
        keys = [f"{arch}-{dashed}.zip" for arch in ARCHITECTURES]
        sizes = ", ".join(f"{arch}: {zipped(key)}" for arch, key in zip(ARCHITECTURES, keys, strict=True))
        lines.append(
            f"| {', '.join(f'`N-{v}-{key}`' for key in keys)} | `functions/{folder}` with what "
            f"`functions/{folder}/requirements.txt` pins, built for that architecture; run by "
            f"{', '.join(f'`{name}`' for name in functions)} | {sizes} |"
        )
    templates = [f"{arch}.template.yaml" for arch in ARCHITECTURES]
    lines += [
        f"| {', '.join(f'`N-{v}-{key}`' for key in templates)} | `template.yaml` with CodeUri/ContentUri naming the "
        f"zips above, `Architecture` fixed to one value and SAR metadata naming `N-arm64` / `N-x86-64` (SAR names "
        f"allow no underscore) | {', '.join(_bytes(live[key]) for key in templates)} |",
        "| `LICENSE`, `README.md` | the template's `LicenseUrl` and `ReadmeUrl` (`sam package` uploads them) | "
        f"{_bytes(live['LICENSE'])}, the README's size |",
        f"| `N-{v}.cdx.json` | CycloneDX 1.6 SBOM, below | {_bytes(files['cdx.json']['bytes'])} |",
        f"| `SHA256SUMS` | `sha256sum` format, every file above | {_bytes(files['SHA256SUMS']['bytes'])} |",
    ]
    return "\n".join(lines)


def render_size_summary(record: Mapping[str, Any]) -> str:
    """deploy.md's sentence on how big a deployment is (from the same record)."""
    files: Mapping[str, Mapping[str, int]] = record["files"]
    layer = files["layer.zip"]
    parts = []
    largest = 0
    for folder, functions in function_folders().items():
        dashed = folder.replace("_", "-")
        per_arch = [files[f"{arch}-{dashed}.zip"] for arch in ARCHITECTURES]
        largest = max([largest, *(entry["unzipped_bytes"] for entry in per_arch)])
        sizes = " / ".join(_mb(entry["bytes"]) for entry in per_arch)
        parts.append(f"`functions/{folder}` {sizes} ({len(functions)} function{'s' if len(functions) > 1 else ''})")
    share = (largest + layer["unzipped_bytes"]) / LAMBDA_UNZIPPED_LIMIT
    return (
        f"Zipped, the layer is {_mb(layer['bytes'])}; each function folder, for {' / '.join(ARCHITECTURES)}: "
        f"{', '.join(parts)}. Unzipped, the largest function with the layer is "
        f"{_mb(largest + layer['unzipped_bytes'])}, {share:.0%} of Lambda's 250 MB limit. Measured for "
        f"{record['version']} on {record['measured']}; every file of a release: "
        "[Releasing](releasing.md#what-a-release-holds)."
    )


def load_sizes(path: Path = SIZES_RECORD) -> dict[str, Any]:
    data = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(data, dict) or "files" not in data:
        raise ValueError(f"{path} does not hold release sizes")
    wanted = [f"{arch}-{folder.replace('_', '-')}.zip" for folder in function_folders() for arch in ARCHITECTURES]
    missing = [name for name in wanted if name not in data["files"]]
    if missing:
        raise ValueError(
            f"{path} has no size for {', '.join(missing)} (a function folder added since it was written): run "
            "`make release-artifacts` and `make release-sizes`, then `make template` again"
        )
    return data


# --- the blocks -------------------------------------------------------------------------------------------------

Renderer = Callable[[], str]


def _template() -> dict[str, Any]:
    return loads(render_template())


def blocks(docs: Path = DOCS) -> list[tuple[Path, str, str, Renderer]]:
    """(file, block name, source, renderer) of every block this module writes."""
    return [
        (docs / "deploy.md", "boundary", _TEMPLATE_SOURCE, lambda: iam.render_boundary(_template())),
        (docs / "deploy.md", "upgrade", f"{_TEMPLATE_SOURCE} and the {compare.BASELINE_VERSION} template",
         lambda: compare.render_upgrade(load(compare.BASELINE), _template(), compare.baseline_label())),
        (docs / "deploy.md", "size-summary", _SIZES_SOURCE, lambda: render_size_summary(load_sizes())),
        (docs / "releasing.md", "release-sizes", _SIZES_SOURCE, lambda: render_release_sizes(load_sizes())),
    ]  # fmt: skip


def write_blocks(docs: Path = DOCS) -> list[Path]:
    written: list[Path] = []
    for path, name, source, render in blocks(docs):
        text = path.read_text(encoding="utf-8")
        updated = replace_block(text, name, source, render())
        if updated != text:
            path.write_text(updated, encoding="utf-8")
            written.append(path) if path not in written else None
    return written


def stale_blocks(docs: Path = DOCS) -> list[str]:
    """The blocks whose content differs from what their sources render now."""
    stale = []
    for path, name, _source, render in blocks(docs):
        if block_in(path.read_text(encoding="utf-8"), name).strip() != render().strip():
            stale.append(f"{path.relative_to(docs.parent)} ({name})")
    return stale


def record_sizes(dist: Path, docs: Path = DOCS) -> Path:
    """Measure ``dist`` into the sizes record below ``docs``, then rewrite the blocks."""
    record = measure_dist(dist)
    path = docs / SIZES_RECORD.relative_to(DOCS)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    write_blocks(docs)
    return path
