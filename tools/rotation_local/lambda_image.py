"""Which Lambda base image ``sam local invoke`` runs on, and an offline stand-in of AWS's when no registry answers.

By default SAM runs a ``python3.13`` zip function on AWS's image, ``public.ecr.aws/lambda/python:3.13-<arch>``,
pulled from Amazon ECR Public: that stays the path for anyone whose machine reaches it (:func:`choose`
returns no image then). Where no registry answers and that image is absent, :func:`ensure_standin`
builds a stand-in once and keeps it (the Docker image, and its root filesystem tarball in
``$ROTATION_LAMBDA_IMAGE_CACHE``, default ``/var/cache/secrets-rotation/lambda-image``); ``sam local
invoke --invoke-image rotation-local/lambda-python:3.13-<arch> --skip-pull-image`` runs on it.

The stand-in is a Debian trixie minbase root filesystem (``mmdebstrap``) with Debian's ``python3``
(CPython 3.13) and ``ca-certificates``; under ``/var/runtime`` the Lambda runtime interface client
(``awslambdaric``, requirements-lambda-image.lock) and the boto3 the tests pin as the runtime's
(requirements-dev.lock); ``/var/runtime/bootstrap`` starts the client for the handler with Lambda's
search path (``/var/task``, then ``/opt/python/lib/python3.13/site-packages``, ``/opt/python``, then
``/var/runtime``); ``/lambda-entrypoint.sh`` is the image's entry point when it runs by itself. SAM adds
the runtime interface emulator it bundles and the layer, as it does on AWS's image. How it differs from
AWS's image (Amazon Linux 2023, Python under ``/var/lang``, AWS's own bootstrap) is in
docs/local-runner.md. Only the machine's own architecture is built.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

from rotation_local.docker_engine import Engine, EngineError
from rotation_local.invoke import REPO_ROOT

AWS_REPOSITORY = "public.ecr.aws/lambda/python"
STANDIN_REPOSITORY = "rotation-local/lambda-python"
PYTHON_VERSION = "3.13"
SUITE = "trixie"
DEFAULT_CACHE = Path("/var/cache/secrets-rotation/lambda-image")
RECIPE_LABEL = "rotation-local.recipe"
REGISTRY_PROBE = "https://public.ecr.aws/v2/"
IMAGE_LOCK = REPO_ROOT / "requirements-lambda-image.lock"
RUNTIME_LOCK = REPO_ROOT / "requirements-dev.lock"
# What the Lambda Python runtime brings besides the standard library (as .ci/template-checks.sh's
# RUNTIME_PACKAGES for .venv-py313): boto3 and its dependencies, at the versions of requirements-dev.lock.
RUNTIME_PACKAGES = ("boto3", "botocore", "jmespath", "python-dateutil", "s3transfer", "six", "urllib3")
# Bump when the recipe below changes: the cached image and tarball are rebuilt.
_RECIPE = 1
_WHEEL_PLATFORMS = {
    "x86_64": ("manylinux_2_17_x86_64", "manylinux2014_x86_64"),
    "arm64": ("manylinux_2_17_aarch64", "manylinux2014_aarch64"),
}
_MMDEBSTRAP_OPTIONS = (
    "--variant=minbase",
    "--mode=root",
    "--quiet",
    "--dpkgopt=path-exclude=/usr/share/doc/*",
    "--dpkgopt=path-exclude=/usr/share/man/*",
    "--dpkgopt=path-exclude=/usr/share/info/*",
    "--dpkgopt=path-exclude=/usr/share/locale/*",
)

BOOTSTRAP = """\
#!/bin/sh
# The runtime's bootstrap (rotation-local stand-in of the Lambda Python image): the runtime interface
# client for the handler Lambda names, with Lambda's search path (/var/task first, then the layers, then
# the runtime's own packages).
export AWS_EXECUTION_ENV="${AWS_EXECUTION_ENV:-AWS_Lambda_python3.13}"
export PYTHONPATH="/opt/python/lib/python3.13/site-packages:/opt/python:/var/runtime${PYTHONPATH:+:$PYTHONPATH}"
cd "${LAMBDA_TASK_ROOT:-/var/task}" || exit 1
exec /usr/bin/python3 -m awslambdaric "${_HANDLER:-$AWS_LAMBDA_FUNCTION_HANDLER}"
"""

ENTRYPOINT = """\
#!/bin/sh
# Entry point of the rotation-local stand-in of the Lambda Python image when it runs by itself:
#   docker run IMAGE module.handler
# (sam local invoke starts its own runtime interface emulator instead, which runs /var/runtime/bootstrap).
if [ $# -lt 1 ]; then echo "give the handler (module.function) as the argument" >&2; exit 142; fi
export _HANDLER="$1"
if [ -n "${AWS_LAMBDA_RUNTIME_API:-}" ]; then exec /var/runtime/bootstrap; fi
for rie in /usr/local/bin/aws-lambda-rie /var/rapid/aws-lambda-rie; do
  if [ -x "$rie" ]; then exec "$rie" /var/runtime/bootstrap; fi
done
echo "no AWS_LAMBDA_RUNTIME_API and no runtime interface emulator (aws-lambda-rie) in this image" >&2
exit 1
"""

Say = Callable[[str], None]


class ImageError(RuntimeError):
    """The stand-in image could not be built (the message says what to do)."""


def host_architecture() -> str:
    """The machine's architecture in Lambda's words (x86_64 or arm64)."""
    machine = platform.machine().lower()
    return "arm64" if machine in ("aarch64", "arm64") else "x86_64"


def aws_image(architecture: str) -> str:
    """The image SAM derives for a python3.13 function of ``architecture``."""
    return f"{AWS_REPOSITORY}:{PYTHON_VERSION}-{architecture}"


def standin_image(architecture: str) -> str:
    return f"{STANDIN_REPOSITORY}:{PYTHON_VERSION}-{architecture}"


def cache_dir() -> Path:
    return Path(os.environ.get("ROTATION_LAMBDA_IMAGE_CACHE") or DEFAULT_CACHE)


def mirror() -> str:
    from rotation_local.rootfs import mirror as debian_mirror

    return debian_mirror()


def runtime_requirements() -> str:
    """requirements-dev.lock's entries (with hashes) of the runtime's packages."""
    from rotation_release.sbom import lock_entries

    return str(lock_entries(RUNTIME_LOCK, list(RUNTIME_PACKAGES)))


def recipe_digest(architecture: str) -> str:
    """What the stand-in holds, hashed: a change to any of it rebuilds the image."""
    wanted = {
        "recipe": _RECIPE,
        "suite": SUITE,
        "mirror": mirror(),
        "architecture": architecture,
        "options": _MMDEBSTRAP_OPTIONS,
        "image_lock": IMAGE_LOCK.read_text(encoding="utf-8"),
        "runtime": runtime_requirements(),
        "bootstrap": BOOTSTRAP,
        "entrypoint": ENTRYPOINT,
    }
    return hashlib.sha256(json.dumps(wanted, sort_keys=True).encode("utf-8")).hexdigest()[:16]


def registry_answers(timeout: float = 5) -> bool:
    """Whether Amazon ECR Public answers at all (any HTTP answer counts; a refusal or timeout does not)."""
    try:
        with urllib.request.urlopen(REGISTRY_PROBE, timeout=timeout):
            return True
    except urllib.error.HTTPError:
        return True
    except (urllib.error.URLError, OSError):
        return False


def choose(engine: Engine, architecture: str, mode: str, say: Say) -> tuple[str | None, bool]:
    """(the image for ``--invoke-image``, or None for AWS's; whether SAM must skip pulling).

    ``mode``: ``aws`` (AWS's image, pulled by SAM as usual), ``standin`` (the offline stand-in), or
    ``auto``: AWS's image when it is here or a registry answers, else the stand-in.
    """
    if mode not in ("auto", "aws", "standin"):
        raise ImageError(f"unknown image choice {mode!r}: auto, aws or standin")
    official = aws_image(architecture)
    if mode == "aws":
        say(f"Lambda image: {official} (AWS's; sam local invoke pulls it)")
        return None, False
    if mode == "auto":
        present = engine.image_labels(official) is not None
        if registry_answers():
            say(f"Lambda image: {official} (AWS's; the registry answers, sam local invoke pulls or updates it)")
            return None, False
        if present:
            say(f"Lambda image: {official} (AWS's, already here; no registry answers, so no pull)")
            return None, True
        say(f"Lambda image: {official} is not here and no registry answers: using the offline stand-in")
    return ensure_standin(engine, architecture, say), True


def ensure_standin(engine: Engine, architecture: str, say: Say) -> str:
    """The stand-in image in ``engine``, imported from the cached tarball or built first."""
    name = standin_image(architecture)
    digest = recipe_digest(architecture)
    labels = engine.image_labels(name)
    if labels is not None and labels.get(RECIPE_LABEL) == digest:
        say(f"Lambda image: {name} (the offline stand-in, built earlier)")
        return name
    tarball = cache_dir() / f"{name.replace('/', '_').replace(':', '_')}-{digest}.tar"
    if not tarball.is_file():
        build_rootfs(architecture, tarball, say)
    started = time.monotonic()
    engine.import_image(tarball, name, image_changes(digest))
    say(f"Lambda image: imported {name} from {tarball} in {time.monotonic() - started:.1f} s")
    return name


def image_changes(digest: str) -> list[str]:
    """The image configuration ``docker import`` applies (Dockerfile instructions)."""
    return [
        'ENTRYPOINT ["/lambda-entrypoint.sh"]',
        "WORKDIR /var/task",
        "ENV LAMBDA_TASK_ROOT=/var/task",
        "ENV LAMBDA_RUNTIME_DIR=/var/runtime",
        "ENV LANG=C.UTF-8",
        "ENV TZ=:/etc/localtime",
        f"LABEL {RECIPE_LABEL}={digest}",
        'LABEL org.opencontainers.image.description="rotation-local offline stand-in of the AWS Lambda Python '
        f"{PYTHON_VERSION} base image (Debian {SUITE}); not AWS's image\"",
    ]


def build_rootfs(architecture: str, tarball: Path, say: Say) -> None:
    """The stand-in's root filesystem as a tarball (root, mmdebstrap, PyPI and a Debian mirror needed)."""
    if architecture != host_architecture():
        raise ImageError(
            f"the offline stand-in is built for this machine's architecture ({host_architecture()}) only, not "
            f"{architecture}: build the functions for {host_architecture()}, or let sam local invoke pull AWS's image"
        )
    if os.geteuid() != 0:
        raise ImageError("building the offline Lambda image stand-in needs root (mmdebstrap --mode=root)")
    if shutil.which("mmdebstrap") is None:
        raise ImageError("mmdebstrap is not installed (apt-get install mmdebstrap)")
    tarball.parent.mkdir(parents=True, exist_ok=True)
    say(f"Lambda image: building the offline stand-in (Debian {SUITE} minbase, python3, awslambdaric, boto3)")
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="rotation-lambda-image-") as scratch:
        stage = Path(scratch) / "stage"
        _stage(stage, architecture, Path(scratch))
        for leftover in tarball.parent.glob(f".{tarball.stem}.*.tar"):  # of an interrupted build
            leftover.unlink(missing_ok=True)
        partial = tarball.with_name(f".{tarball.stem}.{os.getpid()}.tar")  # mmdebstrap writes a tar for *.tar
        command = [
            "mmdebstrap", *_MMDEBSTRAP_OPTIONS, "--include=python3,ca-certificates",
            f"--customize-hook=sync-in {stage} /", SUITE, str(partial), mirror(),
        ]  # fmt: skip
        result = subprocess.run(command, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            partial.unlink(missing_ok=True)
            raise ImageError(f"mmdebstrap {SUITE} failed: {(result.stderr or result.stdout).strip()[-3000:]}")
        partial.rename(tarball)
    for old in tarball.parent.glob(f"{tarball.name.rsplit('-', 1)[0]}-*.tar"):
        if old != tarball:
            old.unlink(missing_ok=True)
    size = tarball.stat().st_size / 1e6
    say(f"Lambda image: root filesystem built in {time.monotonic() - started:.0f} s ({size:.0f} MB, {tarball})")


def _stage(stage: Path, architecture: str, scratch: Path) -> None:
    """What the customize hook copies into the root: /var/runtime (packages, bootstrap), the entry point."""
    runtime = stage / "var" / "runtime"
    runtime.mkdir(parents=True)
    (stage / "var" / "task").mkdir()
    (stage / "opt").mkdir()
    requirements = scratch / "runtime-requirements.txt"
    requirements.write_text(runtime_requirements(), encoding="utf-8")
    platforms = [f"--platform={tag}" for tag in _WHEEL_PLATFORMS[architecture]]
    result = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--no-compile",
         "--no-deps", "--require-hashes", "--only-binary=:all:", *platforms, "--implementation=cp",
         f"--python-version={PYTHON_VERSION}", f"--abi=cp{PYTHON_VERSION.replace('.', '')}",
         "--target", str(runtime), "-r", str(IMAGE_LOCK), "-r", str(requirements)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    if result.returncode != 0:
        lines = [line for line in result.stderr.splitlines() if "is ignored" not in line]
        raise ImageError("pip could not fetch the runtime's packages: " + "\n".join(lines[-20:]))
    shutil.rmtree(runtime / "bin", ignore_errors=True)  # console scripts of the host's pip
    for name, text in (("var/runtime/bootstrap", BOOTSTRAP), ("lambda-entrypoint.sh", ENTRYPOINT)):
        path = stage / name
        path.write_text(text, encoding="utf-8")
        path.chmod(0o755)


__all__ = ["EngineError", "ImageError", "choose", "ensure_standin", "host_architecture"]
