"""File trees, deterministic zips, ELF architectures and SHA256SUMS: the release's plumbing.

A release zip holds the regular files of a built folder, sorted, with a fixed timestamp and the
permissions Lambda needs (0644, 0755 when executable), so zipping the same folder twice gives the same
bytes. ``__pycache__`` and ``*.pyc`` are left out: the built-artifact tests run Python in the build
folders, and what they leave behind is not part of the build.
"""

from __future__ import annotations

import hashlib
import stat
import zipfile
from collections.abc import Iterable, Iterator
from pathlib import Path, PurePosixPath

ZIP_DATE = (1980, 1, 1, 0, 0, 0)  # the earliest date a zip entry can carry
_CHUNK = 1 << 20
ELF_MACHINES = {62: "x86_64", 183: "arm64"}  # e_machine: EM_X86_64, EM_AARCH64


class ReleaseError(Exception):
    """The release cannot be made as asked; the message says why."""


def _skipped(relative: PurePosixPath) -> bool:
    return "__pycache__" in relative.parts or relative.suffix == ".pyc"


def tree_files(root: Path) -> list[PurePosixPath]:
    """The regular files under ``root`` (relative, sorted); symbolic links are refused."""
    if not root.is_dir():
        raise ReleaseError(f"{root} is not a folder")
    found = []
    for path in root.rglob("*"):
        relative = PurePosixPath(path.relative_to(root).as_posix())
        if _skipped(relative):
            continue
        if path.is_symlink():
            raise ReleaseError(f"{path}: symbolic links are not shipped")
        if path.is_file():
            found.append(relative)
    return sorted(found)


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        while chunk := stream.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _mode(path: Path) -> int:
    return 0o755 if path.stat().st_mode & 0o111 else 0o644


def tree_digest(root: Path) -> dict[str, tuple[str, int]]:
    """Relative path -> (sha256, permissions as zipped) of every file :func:`write_zip` would ship."""
    return {str(relative): (sha256_file(root / relative), _mode(root / relative)) for relative in tree_files(root)}


def write_zip(root: Path, target: Path) -> None:
    """Zip ``root``'s files (paths relative to it) deterministically into ``target``."""
    with zipfile.ZipFile(target, "w") as archive:
        for relative in tree_files(root):
            info = zipfile.ZipInfo(str(relative), date_time=ZIP_DATE)
            info.create_system = 3  # Unix, so that the permissions below are read
            info.external_attr = (stat.S_IFREG | _mode(root / relative)) << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, (root / relative).read_bytes(), compresslevel=9)


def zip_digest(path: Path) -> dict[str, tuple[str, int]]:
    """Entry name -> (sha256 of the content, permissions) of a zip, to compare with :func:`tree_digest`."""
    with zipfile.ZipFile(path) as archive:
        return {
            info.filename: (hashlib.sha256(archive.read(info)).hexdigest(), (info.external_attr >> 16) & 0o777)
            for info in archive.infolist()
            if not info.is_dir()
        }


def elf_architecture(header: bytes) -> str | None:
    """The architecture of an ELF file from its first 20 bytes (None: not ELF, or another machine)."""
    if len(header) < 20 or header[:4] != b"\x7fELF":
        return None
    machine = int.from_bytes(header[18:20], "little" if header[5] == 1 else "big")
    return ELF_MACHINES.get(machine)


def elf_files(root: Path) -> Iterator[tuple[PurePosixPath, str | None]]:
    """(relative path, architecture) of every ELF file under ``root``."""
    for relative in tree_files(root):
        with (root / relative).open("rb") as stream:
            header = stream.read(20)
        if header[:4] == b"\x7fELF":
            yield relative, elf_architecture(header)


def write_sha256sums(directory: Path, names: Iterable[str]) -> Path:
    """``SHA256SUMS`` in ``sha256sum``'s format (``sha256sum -c SHA256SUMS`` checks it)."""
    target = directory / "SHA256SUMS"
    lines = [f"{sha256_file(directory / name)}  {name}\n" for name in sorted(names)]
    target.write_text("".join(lines), encoding="utf-8")
    return target


def read_sha256sums(path: Path) -> dict[str, str]:
    sums = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        digest, _, name = line.partition("  ")
        if len(digest) != 64 or not name:
            raise ReleaseError(f"{path}: not a sha256sum line: {line!r}")
        sums[name] = digest
    return sums
