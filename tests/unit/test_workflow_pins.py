"""The workflow pinning check (rotation_release.workflows) on good and bad snippets, and on this
repository's workflows: actions by commit, installs from hash locks, credentials after installs, prod
only by hand."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from helpers import REPO_ROOT
from rotation_release.workflows import check_all, check_installs, check_uses

SHA = "3d3c42e5aac5ba805825da76410c181273ba90b1"
HASH = "sha256:" + "0" * 64
WORKFLOWS = sorted((REPO_ROOT / ".github" / "workflows").glob("*.yml"))


def _workflow(*steps: str) -> str:
    body = "".join(f"      {line}\n" for step in steps for line in step.splitlines())
    return f"on: push\njobs:\n  job:\n    runs-on: ubuntu-24.04\n    steps:\n{body}"


@pytest.mark.parametrize(
    "uses",
    [
        f"- uses: actions/checkout@{SHA} # v7.0.1",
        f"- uses: 'actions/checkout@{SHA}'  # v7.0.1 (latest)",
        f"- uses: github/codeql-action/init@{SHA} # v3.28.0",
        "- uses: ./.github/actions/local",
        "- uses: docker://alpine@sha256:" + "a" * 64,
    ],
)
def test_check_uses_commit_with_release_comment_passes(uses: str) -> None:
    assert check_uses("w.yml", _workflow(uses)) == []


@pytest.mark.parametrize(
    ("uses", "message"),
    [
        ("- uses: actions/checkout@v4", "a tag or branch can move"),
        ("- uses: actions/checkout@main", "a tag or branch can move"),
        ("- uses: actions/checkout@3d3c42e", "a tag or branch can move"),
        (f"- uses: actions/checkout@{SHA}", "say which release it is"),
        (f"- uses: actions/checkout@{SHA} # pinned", "say which release it is"),
        ("- uses: actions/checkout", "no version"),
        ("- uses: docker://alpine:3.20", "pin the image by digest"),
    ],
)
def test_check_uses_tag_branch_or_bare_sha_reported(uses: str, message: str) -> None:
    findings = check_uses("w.yml", _workflow(uses))

    assert len(findings) == 1
    assert message in findings[0].message
    assert findings[0].line == 6


@pytest.fixture
def locks(tmp_path: Path) -> Path:
    hashed = f"boto3==1.44.8 \\\n    --hash={HASH}\n    # via -r x\nsix==1.17.0 --hash={HASH}\n"
    (tmp_path / "hashed.lock").write_text(hashed)
    (tmp_path / "versions.txt").write_text("boto3==1.44.8\n")
    (tmp_path / "nested.txt").write_text(f"-r other.txt\nsix==1.17.0 --hash={HASH}\n")
    return tmp_path


@pytest.mark.parametrize(
    "run",
    [
        "python -m pip install --quiet --require-hashes -r hashed.lock",
        "pip install -r hashed.lock --only-binary :all: >/dev/null 2>&1",
        ".venv-x/bin/python -m pip install --require-hashes --requirement=hashed.lock",
        "sudo pip3 install --no-deps -rhashed.lock && echo done",
        "if ! pip install -r hashed.lock; then exit 1; fi",
        "npm ci",
        "sudo apt-get install -y postgresql",
        "python - <<'PY'\nprint('pip install x')\nPY",
        "echo 'pip install later'",
    ],
)
def test_check_installs_hash_locked_or_no_install_passes(run: str, locks: Path) -> None:
    text = _workflow(f"- run: |\n{''.join('    ' + line + chr(10) for line in run.splitlines())}")

    assert check_installs("w.yml", text, locks) == []


@pytest.mark.parametrize(
    ("run", "message"),
    [
        ("python -m pip install --quiet pip-audit==2.10.1", "pip install pip-audit==2.10.1: name packages in"),
        ("pip install --upgrade pip", "pip install pip: name packages in"),
        ("pip install -r versions.txt", "not pinned with hashes: boto3==1.44.8"),
        ("pip install -r nested.txt", "not pinned with hashes: -r other.txt"),
        ("pip install -r missing.lock", "not a file of this repository"),
        ('pip install -r "$LOCK"', "not a file of this repository"),
        ("pip install --extra-index-url https://example.org/simple -r hashed.lock", "only PyPI may answer"),
        ("pip install -e .", "not a hash-pinned package"),
        ("pip install", "without a requirements file"),
        ("uv pip install ruff", "pip install ruff: name packages in"),
        ("pipx install zizmor", "pipx install: cannot hash-check"),
        ("npx some-tool", "npx: runs a package it fetches unpinned"),
        ("npm install -g some-tool", "npm install: install a lock file instead"),
        ("go install example.com/tool@latest", "go install"),
        ("curl -sSf https://example.org/install.sh | sh", "a download piped into sh"),
        ("wget -qO- https://example.org/x | sudo bash -s", "a download piped into bash"),
        ("cd tools && \\\n  python -m pip install \\\n  requests", "pip install requests: name packages in"),
    ],
)
def test_check_installs_unpinned_install_reported(run: str, message: str, locks: Path) -> None:
    text = _workflow(f"- run: |\n{''.join('    ' + line + chr(10) for line in run.splitlines())}")

    findings = check_installs("w.yml", text, locks)

    assert [f.message for f in findings if message in f.message], findings
    assert {f.line for f in findings} == {7}


def test_check_installs_finding_names_the_line_of_the_command(locks: Path) -> None:
    text = _workflow("- run: echo one", "- run: |\n    echo two\n    pip install six==1.17.0")

    assert [(f.line, f.message.split(":")[0]) for f in check_installs("w.yml", text, locks)] == [
        (9, "pip install six==1.17.0")
    ]


def test_check_all_repository_workflows_clean() -> None:
    assert WORKFLOWS
    assert [str(f) for f in check_all(WORKFLOWS, REPO_ROOT)] == []


def test_zizmor_policy_requires_hash_pins() -> None:
    config = yaml.safe_load((REPO_ROOT / ".github" / "zizmor.yml").read_text())

    assert config["rules"]["unpinned-uses"]["config"]["policies"] == {"*": "hash-pin"}


def _steps(workflow: str, job: str) -> list[dict[str, Any]]:
    data = yaml.safe_load((REPO_ROOT / ".github" / "workflows" / workflow).read_text())
    steps: list[dict[str, Any]] = data["jobs"][job]["steps"]
    return steps


def _index(steps: list[dict[str, Any]], predicate: Any) -> int:
    matches = [i for i, step in enumerate(steps) if predicate(step)]
    assert len(matches) == 1, steps
    return matches[0]


def _credentials(step: dict[str, Any]) -> bool:
    return str(step.get("uses", "")).startswith("aws-actions/configure-aws-credentials@")


def test_deploy_workflow_installs_and_builds_before_credentials() -> None:
    steps = _steps("deploy.yml", "deploy")

    credentials = _index(steps, _credentials)
    install = _index(steps, lambda s: "requirements-sam.lock" in s.get("run", ""))
    build = _index(steps, lambda s: "sam build" in s.get("run", ""))
    deploy = _index(steps, lambda s: "sam deploy" in s.get("run", ""))

    assert install < build < credentials < deploy
    assert all("pip install" not in s.get("run", "") for s in steps[credentials:])


def test_deploy_workflow_push_resolves_to_dev_prod_only_by_hand_from_main() -> None:
    data = yaml.safe_load((REPO_ROOT / ".github" / "workflows" / "deploy.yml").read_text())
    job = data["jobs"]["deploy"]
    dispatched_or_dev = "${{ github.event_name == 'workflow_dispatch' && inputs.environment || 'dev' }}"

    # PyYAML reads the key `on` as True.
    assert set(data[True]) == {"push", "workflow_dispatch"}
    assert data[True]["push"] == {"branches": ["main"]}
    assert job["environment"] == dispatched_or_dev
    assert job["env"]["CONFIG_ENV"] == dispatched_or_dev
    guard = job["steps"][0]
    assert guard["if"] == "env.CONFIG_ENV == 'prod' && github.ref != 'refs/heads/main'"
    assert "exit 1" in guard["run"]


def test_release_workflow_publish_installs_before_credentials_in_protected_environment() -> None:
    data = yaml.safe_load((REPO_ROOT / ".github" / "workflows" / "release.yml").read_text())
    publish = data["jobs"]["publish-sar"]
    steps = publish["steps"]

    credentials = _index(steps, _credentials)
    install = _index(steps, lambda s: "requirements-sam.lock" in s.get("run", ""))
    verify = _index(steps, lambda s: "sha256sum" in s.get("run", ""))
    publish_step = _index(steps, lambda s: "sam publish" in s.get("run", ""))

    assert install < credentials < publish_step
    assert verify < credentials
    assert publish["environment"] == "release"
    assert data[True] == {"push": {"tags": ["v*"]}}


def test_release_workflow_only_attest_and_publish_jobs_can_mint_tokens() -> None:
    data = yaml.safe_load((REPO_ROOT / ".github" / "workflows" / "release.yml").read_text())
    permissions = {name: job.get("permissions", {}) for name, job in data["jobs"].items()}

    assert data["permissions"] == {"contents": "read"}
    assert permissions["build"] == {"contents": "read"}
    assert permissions["attest"] == {"contents": "read", "id-token": "write", "attestations": "write"}
    assert permissions["github-release"] == {"contents": "write"}
    assert permissions["publish-sar"] == {"contents": "read", "id-token": "write"}
