"""Dependencies: what we test with is what we ship, and every installed package is pinned with hashes."""

from __future__ import annotations

from pathlib import Path

from helpers import REPO_ROOT
from pins import PIN as _PIN
from pins import pins


def test_lock_pins_every_requested_package_at_the_requested_version() -> None:
    requested = pins(REPO_ROOT / "requirements-dev.txt")
    for source in [REPO_ROOT / "layers" / "rotation_core" / "requirements.in",
                   *(REPO_ROOT / "functions").glob("*/requirements.in")]:  # fmt: skip
        requested.update(pins(source))  # make lock compiles these into the dev lock too
    locked = pins(REPO_ROOT / "requirements-dev.lock")
    assert requested
    assert {name: locked.get(name) for name in requested} == requested


SHIPPED = [
    REPO_ROOT / "layers" / "rotation_core" / "requirements.txt",
    *sorted(path.with_suffix(".txt") for path in (REPO_ROOT / "functions").glob("*/requirements.in")),
]


def unhashed(path: Path) -> tuple[int, list[str]]:
    """How many packages the file pins, and which of them come without a hash."""
    entries: list[list[str]] = []
    for line in path.read_text().splitlines():
        if _PIN.match(line):
            entries.append([line])
        elif entries and line.startswith(" "):
            entries[-1].append(line)
    return len(entries), [entry[0] for entry in entries if not any("--hash=sha256:" in line for line in entry)]


def test_lock_every_package_has_a_hash() -> None:
    count, missing = unhashed(REPO_ROOT / "requirements-dev.lock")
    assert count > 50
    assert missing == []


def test_shipped_requirements_are_every_function_with_a_driver_and_the_layer() -> None:
    assert [p.parent.name for p in SHIPPED] == ["rotation_core", "mysql", "postgres", "valkey"]


def test_shipped_requirements_every_package_has_a_hash_and_what_was_asked() -> None:
    for path in SHIPPED:
        count, missing = unhashed(path)
        assert count >= 1, path
        assert missing == [], path
        requested = pins(path.with_suffix(".in"))
        assert requested, path
        assert {name: pins(path).get(name) for name in requested} == requested, path


def test_shipped_requirements_match_the_versions_tested() -> None:
    tested = pins(REPO_ROOT / "requirements-dev.lock")  # what the tests really run with
    shipped = {}
    for path in [REPO_ROOT / "layers" / "rotation_core" / "requirements.txt",
                 *sorted((REPO_ROOT / "functions").glob("*/requirements.txt"))]:  # fmt: skip
        shipped.update(pins(path))
    assert shipped  # powertools in the layer, the drivers with their functions
    assert {name: tested.get(name) for name in shipped} == shipped


# The tooling the pipelines install (SAM CLI, scanners, audit and lint tools, pip itself, the offline
# Lambda image stand-in's runtime client): each list of requests has a lock that pins every package with
# hashes (`make lock`).
TOOL_LOCKS = ["sam", "scan", "ci", "actionlint", "pip", "lambda-image"]


def test_tool_locks_pin_every_requested_package_at_the_requested_version_with_hashes() -> None:
    for name in TOOL_LOCKS:
        requested = pins(REPO_ROOT / f"requirements-{name}.txt")
        lock = REPO_ROOT / f"requirements-{name}.lock"
        count, missing = unhashed(lock)
        assert requested, name
        assert {package: pins(lock).get(package) for package in requested} == requested, name
        assert count >= len(requested), name
        assert missing == [], name


def test_tool_locks_name_no_extras() -> None:
    # pip before 24 does not count `boto3[crt]==X` as the pin of plain boto3 in --require-hashes mode.
    for name in TOOL_LOCKS:
        text = (REPO_ROOT / f"requirements-{name}.lock").read_text()
        assert not [line for line in text.splitlines() if _PIN.match(line) and "[" in line.split("==")[0]], name
