"""Private Debian root filesystems for database servers newer than the host's, and running programs in them.

The host is Debian 12 (bookworm); PostgreSQL 17/18, MariaDB 11.8 and Oracle MySQL 9.7 come from
Debian trixie and sid, whose packages need a newer C library. Each suite gets its own root filesystem,
built with ``mmdebstrap`` (variant minbase) and kept in a cache outside the repository
(``$ROTATION_SERVERS_CACHE``, default ``/var/cache/secrets-rotation/roots``). The host's apt sources
are never touched. Servers run with ``chroot ROOT ...``; their data, sockets and logs live in a
temporary folder inside the root, so the host reads them at ``ROOT/<path>``. chroot needs root.

A build goes to a fresh folder (named after a hash of what it holds: suite, packages, mirror, recipe);
``CACHE/<suite>`` is a symbolic link to the finished folder, replaced atomically at the end, and the
previous folder is removed after that. An interrupted build therefore never leaves a broken root
behind (its folder is removed by the next build), and a root whose package list changed is rebuilt.
The stamp inside each root records what it holds, how long its build took and its size. A server
that is running from a root while it is rebuilt loses it: rebuild between test runs.
"""

from __future__ import annotations

import contextlib
import ctypes
import fcntl
import hashlib
import json
import os
import re
import secrets
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

DEFAULT_CACHE = Path("/var/cache/secrets-rotation/roots")
DEFAULT_MIRROR = "http://deb.debian.org/debian"
STAMP_NAME = ".rotation-root.json"
# Bump when the build recipe below changes, so that cached roots are rebuilt (2: trixie gained valkey-server).
_RECIPE = 2
_MMDEBSTRAP_OPTIONS = (
    "--variant=minbase",
    "--mode=root",
    "--quiet",
    # The Release files of a mirror snapshot expire (sid's are valid for a week); the signatures are
    # still checked, only the freshness date is not.
    '--aptopt=Acquire::Check-Valid-Until "false"',
    # Documentation, manual pages and translations are of no use to a throwaway server.
    "--dpkgopt=path-exclude=/usr/share/doc/*",
    "--dpkgopt=path-exclude=/usr/share/man/*",
    "--dpkgopt=path-exclude=/usr/share/info/*",
    "--dpkgopt=path-exclude=/usr/share/locale/*",
    # postgresql-NN would create and start a cluster of its own; the tests create theirs.
    '--essential-hook=mkdir -p "$1/etc/postgresql-common/createcluster.d" && '
    'echo "create_main_cluster = false" > "$1/etc/postgresql-common/createcluster.d/rotation-local.conf"',
)


class RootError(RuntimeError):
    """A root filesystem is missing, stale, or could not be built."""


def cache_dir() -> Path:
    return Path(os.environ.get("ROTATION_SERVERS_CACHE") or DEFAULT_CACHE)


def mirror() -> str:
    return os.environ.get("ROTATION_SERVERS_MIRROR") or DEFAULT_MIRROR


def can_chroot() -> bool:
    return os.geteuid() == 0


@dataclass(frozen=True)
class BuildReport:
    suite: str
    path: Path
    seconds: float
    size_bytes: int
    packages: dict[str, str]  # package -> version installed


@dataclass(frozen=True)
class RootFS:
    """A root filesystem of one Debian suite holding the given packages (and what they depend on)."""

    suite: str
    packages: tuple[str, ...]

    @property
    def link(self) -> Path:
        """``CACHE/<suite>``: where the current build of this root is found."""
        return cache_dir() / self.suite

    @property
    def wanted(self) -> dict[str, object]:
        return {"suite": self.suite, "packages": sorted(self.packages), "mirror": mirror(), "recipe": _RECIPE}

    @property
    def build_name(self) -> str:
        digest = hashlib.sha256(json.dumps(self.wanted, sort_keys=True).encode()).hexdigest()[:12]
        return f".{self.suite}-{digest}"

    def stamp(self) -> dict[str, object] | None:
        try:
            data = json.loads((self.link / STAMP_NAME).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        return data if isinstance(data, dict) else None

    def is_current(self) -> bool:
        stamp = self.stamp()
        return stamp is not None and stamp.get("wanted") == self.wanted

    def problem(self) -> str | None:
        """Why servers cannot run from this root right now, or None."""
        if not can_chroot():
            return f"the Debian {self.suite} root filesystem needs root (chroot) to build and to run servers from"
        if not (self.link / STAMP_NAME).is_file():
            return (
                f"the Debian {self.suite} root filesystem is not built ({self.link}); run `tools/bootstrap.sh "
                "servers .venv` (make test does) as root"
            )
        if not self.is_current():
            return (
                f"the Debian {self.suite} root filesystem at {self.link} holds other packages than wanted "
                f"({', '.join(sorted(self.packages))}); run `tools/bootstrap.sh servers .venv` to rebuild it"
            )
        return None

    def _linked_name(self) -> str:
        return os.readlink(self.link) if self.link.is_symlink() else ""

    def resolved(self) -> Path:
        """The build folder the link points to now (a running server keeps using it across rebuilds)."""
        problem = self.problem()
        if problem:
            raise RootError(problem)
        return self.link.resolve()

    def build(
        self,
        *,
        say: Callable[[str], None] = print,
        force: bool = False,
        check: Callable[[dict[str, str]], list[str]] = lambda _installed: [],
    ) -> BuildReport | None:
        """Build the root unless it is current (then None); atomically replaces the previous build.

        ``check`` gets the installed versions of the wanted packages and returns problems; any problem
        discards the new build (the previous one, if any, stays).
        """
        if not can_chroot():
            raise RootError(self.problem() or "root needed")
        if shutil.which("mmdebstrap") is None:
            raise RootError("mmdebstrap is not installed (apt-get install mmdebstrap)")
        cache = cache_dir()
        cache.mkdir(parents=True, exist_ok=True)
        with _locked(cache / ".lock"):
            if self.is_current() and not force:
                return None
            _remove_leftovers(cache, self.suite, keep=self._linked_name())
            target = cache / f"{self.build_name}-{secrets.token_hex(4)}"  # never the folder in use
            work = Path(tempfile.mkdtemp(prefix=f".{self.suite}-building-", dir=cache))
            say(f"building the Debian {self.suite} root filesystem ({', '.join(self.packages)}) in {cache}")
            started = time.monotonic()
            try:
                _mmdebstrap(self.suite, self.packages, work)
                installed = installed_versions(work, self.packages)
                problems = check(installed)
                if problems:
                    raise RootError(f"the new Debian {self.suite} root filesystem is unusable: {'; '.join(problems)}")
                seconds = time.monotonic() - started
                size = tree_size(work)
                stamp = {
                    "wanted": self.wanted,
                    "installed": installed,
                    "build_seconds": round(seconds, 1),
                    "size_bytes": size,
                    "built_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                }
                (work / STAMP_NAME).write_text(json.dumps(stamp, indent=2) + "\n", encoding="utf-8")
                work.rename(target)
            except BaseException:
                _remove_tree(work)
                raise
            # The switch: a new symbolic link renamed over the old one (atomic).
            new_link = cache / f".{self.suite}.link-{os.getpid()}"
            with contextlib.suppress(FileNotFoundError):
                new_link.unlink()
            new_link.symlink_to(target.name)
            if self.link.exists() and not self.link.is_symlink():
                _remove_tree(self.link)
            new_link.replace(self.link)
            _remove_leftovers(cache, self.suite, keep=target.name)
            return BuildReport(self.suite, target, seconds, size, installed)


def installed_versions(root: Path, packages: Sequence[str]) -> dict[str, str]:
    result = subprocess.run(
        ["chroot", str(root), "dpkg-query", "-W", "-f", "${Package} ${Version}\\n", *packages],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    if result.returncode != 0:
        raise RootError(f"dpkg-query in the new root failed: {result.stderr.strip()[-500:]}")
    return dict(line.split(" ", 1) for line in result.stdout.splitlines() if " " in line)


def upstream_version(debian_version: str) -> str:
    """``1:11.8.9+ds-0+deb13u1`` -> ``11.8.9``."""
    text = debian_version.split(":", 1)[-1]
    match = re.match(r"[0-9][0-9.]*", text)
    return match.group().rstrip(".") if match else text


def tree_size(path: Path) -> int:
    """Disk usage in bytes (allocated blocks), not following symbolic links or other file systems."""
    total = 0
    device = path.stat().st_dev
    for folder, dirs, files in os.walk(path):
        for name in dirs + files:
            with contextlib.suppress(OSError):
                info = os.lstat(os.path.join(folder, name))
                if info.st_dev == device:
                    total += info.st_blocks * 512
    return total


def _terminate_with_parent() -> None:
    """In the child: SIGTERM when the parent dies, so that a killed build does not go on in the background.

    mmdebstrap answers SIGTERM by unmounting what it mounted in the root and exiting.
    """
    pr_set_pdeathsig = 1
    ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGTERM)


def _mmdebstrap(suite: str, packages: Sequence[str], target: Path) -> None:
    command = ["mmdebstrap", *_MMDEBSTRAP_OPTIONS, f"--include={','.join(packages)}", suite, str(target), mirror()]
    result = subprocess.run(
        command,
        capture_output=True,
        text=True,
        check=False,
        preexec_fn=_terminate_with_parent,
    )
    if result.returncode != 0:
        raise RootError(
            f"mmdebstrap {suite} failed ({result.returncode}): {(result.stderr or result.stdout).strip()[-3000:]}"
        )


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    with open(path, "a+", encoding="utf-8") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _remove_leftovers(cache: Path, suite: str, *, keep: str = "") -> None:
    """Earlier builds of this suite and interrupted ones (the caller holds the lock)."""
    for entry in cache.glob(f".{suite}-*"):
        if entry.name != keep and entry.is_dir() and not entry.is_symlink():
            _remove_tree(entry)


def _mounts_below(path: Path) -> list[str]:
    prefix = str(path.resolve()).rstrip("/") + "/"
    mounts = []
    with open("/proc/self/mounts", encoding="utf-8") as handle:
        for line in handle:
            fields = line.split()
            if len(fields) > 1:
                point = fields[1].replace("\\040", " ")
                if point.startswith(prefix):
                    mounts.append(point)
    return sorted(mounts, key=len, reverse=True)


def _remove_tree(path: Path) -> None:
    """Remove a root filesystem; first unmount what a killed mmdebstrap may have left mounted in it.

    Never recurses into a mounted file system: if something stays mounted, this refuses.
    """
    for point in _mounts_below(path):
        subprocess.run(["umount", "--lazy", point], capture_output=True, check=False)
    still = _mounts_below(path)
    if still:
        raise RootError(f"cannot remove {path}: still mounted: {', '.join(still)}")
    shutil.rmtree(path, ignore_errors=True)


@dataclass(frozen=True)
class Chroot:
    """Run programs from a root filesystem (``root``) or from the host (``root=None``), and map paths.

    Paths handed to a program are as it sees them (``inside``); the host reads them at ``host``.
    """

    root: Path | None = None

    def inside(self, host_path: Path) -> str:
        if self.root is None:
            return str(host_path)
        return "/" + str(host_path.relative_to(self.root))

    def host(self, inner_path: str) -> Path:
        if self.root is None:
            return Path(inner_path)
        return self.root / inner_path.lstrip("/")

    def command(self, argv: Sequence[str], *, user: tuple[int, int] | None = None) -> list[str]:
        """``argv`` (paths as seen inside) run in the root; with ``user`` (uid, gid) as that user."""
        if self.root is None:
            return list(argv)
        if not can_chroot():
            raise RootError(f"running programs from {self.root} needs root (chroot)")
        spec = [f"--userspec={user[0]}:{user[1]}"] if user else []
        return ["chroot", *spec, str(self.root), *argv]

    def make_tempdir(self, prefix: str) -> Path:
        """A new private folder (host path): inside the root's /tmp, or the host's temporary folder."""
        if self.root is None:
            return Path(tempfile.mkdtemp(prefix=prefix))
        return Path(tempfile.mkdtemp(prefix=prefix, dir=self.root / "tmp"))

    def user_ids(self, name: str) -> tuple[int, int] | None:
        """uid and gid of ``name`` in the root's /etc/passwd (the host's with no root); None if absent."""
        if self.root is None:
            import pwd

            try:
                entry = pwd.getpwnam(name)
            except KeyError:
                return None
            return entry.pw_uid, entry.pw_gid
        with contextlib.suppress(FileNotFoundError):
            for line in (self.root / "etc" / "passwd").read_text(encoding="utf-8").splitlines():
                fields = line.split(":")
                if len(fields) > 3 and fields[0] == name:
                    return int(fields[2]), int(fields[3])
        return None

    def exists(self, inner_path: str) -> bool:
        return self.host(inner_path).is_file()
