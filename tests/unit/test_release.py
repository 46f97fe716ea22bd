"""One version everywhere, SAR-ready metadata, release templates that are template.yaml with the release's
code, and the example that deploys a release from SAR (tools/rotation_release)."""

from __future__ import annotations

import copy
import datetime
import hashlib
import re
import tomllib
import zipfile
from pathlib import Path
from typing import Any

import pytest
import yaml

import rotation_core
from cloudformation import CloudFormationLoader, load
from helpers import REPO_ROOT
from rotation_local.template import ReleaseLayout, render_template
from rotation_release import project as project_module
from rotation_release.deploy import SAMCONFIG, ConfigError, command_architecture, deploy_architecture, pin_build
from rotation_release.files import (
    ReleaseError,
    elf_architecture,
    read_sha256sums,
    write_sha256sums,
    write_zip,
    zip_digest,
)
from rotation_release.project import Project, changelog_problems, changelog_releases, tag_problems
from rotation_release.sar import ARCHITECTURES, METADATA_KEY, application_metadata, metadata_problems
from rotation_release.sbom import hashed_pins, lock_entries

# sha256 of https://www.apache.org/licenses/LICENSE-2.0.txt, the standard text.
APACHE_2_SHA256 = "cfc7749b96f63bd31c3c42b5c471bf756814053e847c10f3eb003417bc523d30"
PROJECT = project_module.load()
DEPLOY_FROM_SAR = REPO_ROOT / "examples" / "deploy-from-sar.yaml"


def _project(**changes: Any) -> Project:
    values = {**PROJECT.__dict__, **changes}
    return Project(**values)


def test_version_pyproject_rotation_core_and_template_agree() -> None:
    metadata = load(REPO_ROOT / "template.yaml")["Metadata"][METADATA_KEY]

    assert rotation_core.__version__ == PROJECT.version
    assert metadata["SemanticVersion"] == PROJECT.version
    assert metadata["SourceCodeUrl"] == f"{PROJECT.repository}/tree/v{PROJECT.version}"


def test_license_file_is_the_standard_apache_2_text_pyproject_names() -> None:
    assert PROJECT.license == "Apache-2.0"
    assert hashlib.sha256((REPO_ROOT / "LICENSE").read_bytes()).hexdigest() == APACHE_2_SHA256


def test_changelog_newest_section_is_the_version() -> None:
    assert changelog_problems(project_module.CHANGELOG.read_text(), PROJECT.version, released=False) == []


def test_changelog_problems_other_version_reported() -> None:
    text = "# Changelog\n\n## [0.1.0] - 2026-11-25\n\n- first\n"

    assert changelog_problems(text, "0.2.0", released=False) == [
        "CHANGELOG.md: the newest section is 0.1.0, the version is 0.2.0"
    ]


def test_changelog_problems_release_without_date_reported() -> None:
    text = "## [Unreleased]\n\n## [0.2.0] - Unreleased\n\n- a change\n\n## [0.1.0] - 2026-11-25\n\n- first\n"

    assert changelog_problems(text, "0.2.0", released=False) == []
    assert changelog_problems(text, "0.2.0", released=True) == [
        "CHANGELOG.md: the 0.2.0 section has no release date (## [0.2.0] - YYYY-MM-DD)"
    ]


def test_changelog_releases_dates_and_bodies_parsed() -> None:
    text = "## [0.2.0] - 2026-12-02\n\n### Fixed\n\n- a bug\n\n## [0.1.0] - 2026-11-25\n\n- first\n"

    releases = changelog_releases(text)

    assert [(r.version, r.date) for r in releases] == [
        ("0.2.0", datetime.date(2026, 12, 2)),
        ("0.1.0", datetime.date(2026, 11, 25)),
    ]
    assert releases[0].body == "### Fixed\n\n- a bug"


def test_tag_problems_tag_of_the_version_from_its_repository_none() -> None:
    assert tag_problems(PROJECT, f"v{PROJECT.version}", PROJECT.repository + "/") == []


def test_tag_problems_other_tag_or_repository_reported() -> None:
    problems = tag_problems(PROJECT, "v9.9.9", "https://github.com/someone-else/fork")

    assert len(problems) == 2
    assert "does not name the version" in problems[0]
    assert "https://github.com/someone-else/fork" in problems[1]


@pytest.mark.parametrize("architecture", [None, *ARCHITECTURES])
def test_sar_metadata_generated_is_complete_and_consistent(architecture: str | None) -> None:
    metadata = application_metadata(PROJECT, architecture)

    assert metadata_problems(metadata, PROJECT, template_dir=REPO_ROOT, architecture=architecture) == []
    assert metadata["Name"] == PROJECT.name + ("" if architecture is None else "-" + architecture.replace("_", "-"))


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"SemanticVersion": "0.1.9"}, "SemanticVersion is '0.1.9'; pyproject.toml makes it '0.2.0'"),
        ({"SemanticVersion": "2"}, "SemanticVersion '2' is not a semantic version"),
        ({"Name": "secrets_rotation"}, "Name 'secrets_rotation': 1-140 letters, digits and hyphens"),
        ({"Author": "Some--One"}, "Author 'Some--One': 1-127 lower-case letters, digits and single hyphens"),
        ({"Description": "x" * 257}, "Description: 257 characters, SAR allows 256"),
        ({"Labels": ["ok", "not ok"]}, "Labels: 'not ok' is not a valid label"),
        ({"ReadmeUrl": "MISSING.md"}, "ReadmeUrl 'MISSING.md': no such file next to the template"),
        ({"SourceCodeUrl": {"Fn::Sub": "x"}}, "SourceCodeUrl: intrinsic functions are not supported"),
        ({"LicenseUrl": None}, "LicenseUrl is missing"),
        ({"Home": "x"}, "Home is not a SAR metadata property this project uses"),
    ],
)
def test_sar_metadata_problems_bad_value_reported(change: dict[str, Any], expected: str) -> None:
    metadata = {**application_metadata(PROJECT), **change}

    problems = metadata_problems(metadata, PROJECT, template_dir=REPO_ROOT)

    assert any(problem.startswith(expected) for problem in problems), problems


def test_sar_metadata_other_architecture_name_reported() -> None:
    metadata = application_metadata(PROJECT, "arm64")

    problems = metadata_problems(metadata, PROJECT, template_dir=REPO_ROOT, architecture="x86_64")

    assert problems == [
        f"Name is '{PROJECT.name}-arm64'; pyproject.toml makes it '{PROJECT.name}-x86-64'",
    ]


def _without_code(template: dict[str, Any]) -> dict[str, Any]:
    """A template with what a release changes taken out: code locations, SAR name and description,
    the Architecture parameter, and the layer's build method."""
    stripped = copy.deepcopy(template)
    for resource in stripped["Resources"].values():
        resource.get("Properties", {}).pop("CodeUri", None)
        resource.get("Properties", {}).pop("ContentUri", None)
    stripped["Resources"]["RotationCoreLayer"].pop("Metadata", None)
    stripped["Parameters"].pop("Architecture")
    for key in ("Name", "Description"):
        stripped["Metadata"][METADATA_KEY].pop(key)
    return stripped


@pytest.mark.parametrize("architecture", ARCHITECTURES)
def test_release_template_is_template_yaml_with_the_release_code(architecture: str, tmp_path: Path) -> None:
    layout = ReleaseLayout(
        architecture, "layer.zip", {"postgres": "pg.zip", "mysql": "my.zip", "valkey": "vk.zip", "api_key": "ak.zip"}
    )
    path = tmp_path / "release.yaml"
    path.write_text(render_template(layout))

    release, source = load(path), load(REPO_ROOT / "template.yaml")

    # Everything the least-privilege tests assert on template.yaml holds for the release templates too.
    assert _without_code(release) == _without_code(source)
    assert release["Parameters"]["Architecture"]["AllowedValues"] == [architecture]
    assert release["Parameters"]["Architecture"]["Default"] == architecture
    assert release["Resources"]["RotationCoreLayer"]["Properties"]["ContentUri"] == "layer.zip"
    resources = release["Resources"]
    codes = {name: r["Properties"]["CodeUri"] for name, r in resources.items() if "CodeUri" in r["Properties"]}
    assert codes == {
        "MySqlSingleUserFunction": "my.zip",
        "MySqlAlternatingUsersFunction": "my.zip",
        "MySqlDualPasswordFunction": "my.zip",
        "PostgresSingleUserFunction": "pg.zip",
        "PostgresAlternatingUsersFunction": "pg.zip",
        "ValkeyDualPasswordFunction": "vk.zip",
        "ApiKeyFunction": "ak.zip",
    }
    assert metadata_problems(release["Metadata"][METADATA_KEY], PROJECT, template_dir=REPO_ROOT,
                             architecture=architecture) == []  # fmt: skip


def test_deploy_from_sar_example_deploys_this_version_and_attaches_it() -> None:
    example, source = load(DEPLOY_FROM_SAR), load(REPO_ROOT / "template.yaml")
    application = example["Resources"]["RotationFunctions"]

    assert example["Parameters"]["SemanticVersion"]["Default"] == PROJECT.version
    assert application["Type"] == "AWS::Serverless::Application"
    assert application["Properties"]["Location"] == {
        "ApplicationId": {"Ref": "ApplicationId"},
        "SemanticVersion": {"Ref": "SemanticVersion"},
    }
    # Every parameter it passes exists in the application's template.
    assert set(application["Properties"]["Parameters"]) <= set(source["Parameters"])
    schedules = [r for r in example["Resources"].values() if r["Type"] == "AWS::SecretsManager::RotationSchedule"]
    assert len(schedules) == 4
    outputs = []
    for schedule in schedules:
        choices = [schedule["Properties"]["RotationLambdaARN"]]
        while choices:
            arn = choices.pop()
            if "Fn::GetAtt" in arn:
                outputs.append(arn)
            else:
                choices += arn["Fn::If"][1:]  # one function per strategy, possibly nested
        assert set(schedule["Properties"]["RotationRules"]) == {"AutomaticallyAfterDays"}
    names = {o["Fn::GetAtt"][1].removeprefix("Outputs.") for o in outputs}
    assert names == set(source["Outputs"]) - {"RotationCoreLayerArn"}


def test_deploy_from_sar_example_application_id_matches_released_names() -> None:
    pattern = load(DEPLOY_FROM_SAR)["Parameters"]["ApplicationId"]["AllowedPattern"]

    for architecture in ARCHITECTURES:
        name = application_metadata(PROJECT, architecture)["Name"]
        assert re.fullmatch(pattern, f"arn:aws:serverlessrepo:eu-west-1:111122223333:applications/{name}")
    assert not re.fullmatch(pattern, "arn:aws:serverlessrepo:eu-west-1:1111:applications/x")


def test_zip_same_folder_twice_same_bytes_with_lambda_permissions(tmp_path: Path) -> None:
    folder = tmp_path / "built"
    (folder / "pkg" / "__pycache__").mkdir(parents=True)
    (folder / "app.py").write_text("x = 1\n")
    (folder / "pkg" / "tool").write_text("#!/bin/sh\n")
    (folder / "pkg" / "tool").chmod(0o700)
    (folder / "pkg" / "__pycache__" / "app.cpython-313.pyc").write_bytes(b"cache")

    write_zip(folder, tmp_path / "a.zip")
    (folder / "app.py").touch()  # another mtime: same zip
    write_zip(folder, tmp_path / "b.zip")

    assert (tmp_path / "a.zip").read_bytes() == (tmp_path / "b.zip").read_bytes()
    digest = zip_digest(tmp_path / "a.zip")
    assert {name: mode for name, (_, mode) in digest.items()} == {"app.py": 0o644, "pkg/tool": 0o755}
    with zipfile.ZipFile(tmp_path / "a.zip") as archive:
        assert {info.date_time for info in archive.infolist()} == {(1980, 1, 1, 0, 0, 0)}


def test_sha256sums_written_in_sha256sum_format_and_read_back(tmp_path: Path) -> None:
    (tmp_path / "b.zip").write_bytes(b"b")
    (tmp_path / "a.zip").write_bytes(b"a")

    path = write_sha256sums(tmp_path, ["b.zip", "a.zip"])

    assert path.read_text() == (
        f"{hashlib.sha256(b'a').hexdigest()}  a.zip\n{hashlib.sha256(b'b').hexdigest()}  b.zip\n"
    )
    digests = {"a.zip": hashlib.sha256(b"a").hexdigest(), "b.zip": hashlib.sha256(b"b").hexdigest()}
    assert read_sha256sums(path) == digests


@pytest.mark.parametrize(
    ("machine", "byteorder", "expected"),
    [(62, "little", "x86_64"), (183, "little", "arm64"), (183, "big", "arm64"), (40, "little", None)],
)
def test_elf_architecture_machine_field_read(machine: int, byteorder: str, expected: str | None) -> None:
    header = b"\x7fELF\x02" + (b"\x01" if byteorder == "little" else b"\x02") + bytes(12)
    header += machine.to_bytes(2, "little" if byteorder == "little" else "big")

    assert elf_architecture(header) == expected
    assert elf_architecture(b"#!/bin/sh\n" + bytes(10)) is None


def test_hashed_pins_unhashed_or_unpinned_requirement_refused(tmp_path: Path) -> None:
    good = tmp_path / "good.txt"
    good.write_text("PyMySQL==1.2.4 \\\n    --hash=sha256:" + "a" * 64 + "\n    # via -r requirements.in\n")
    unhashed = tmp_path / "unhashed.txt"
    unhashed.write_text("pymysql==1.2.4\n")
    floating = tmp_path / "floating.txt"
    floating.write_text("pymysql>=1 \\\n    --hash=sha256:" + "a" * 64 + "\n")

    assert hashed_pins(good) == {"pymysql": "1.2.4"}
    with pytest.raises(Exception, match="has no --hash"):
        hashed_pins(unhashed)
    with pytest.raises(Exception, match="not pinned with =="):
        hashed_pins(floating)


def test_lock_entries_runtime_stand_in_taken_with_hashes_from_the_dev_lock() -> None:
    entries = lock_entries(REPO_ROOT / "requirements-dev.lock", ["boto3", "botocore"])

    assert entries.startswith("boto3==")
    assert entries.count("--hash=sha256:") >= 2
    with pytest.raises(Exception, match="does not pin not-a-package"):
        lock_entries(REPO_ROOT / "requirements-dev.lock", ["not-a-package"])


def test_template_loader_reads_metadata_of_yaml_with_short_forms() -> None:
    # The loader the offline checks use (rotation_release check-metadata) agrees with the tests' loader.
    from rotation_release.__main__ import load_template

    text = (REPO_ROOT / "template.yaml").read_text()
    expected = yaml.load(text, Loader=CloudFormationLoader)["Metadata"]  # noqa: S506 (SafeLoader subclass)

    assert load_template(REPO_ROOT / "template.yaml")["Metadata"] == expected


# --- deploying from a clone: one architecture for sam build and sam deploy -------------------------------------


def test_samconfig_every_environment_builds_the_architecture_it_deploys() -> None:
    config = tomllib.loads(SAMCONFIG.read_text())
    environments = [name for name in config if name != "version"]

    assert environments == ["default", "dev", "prod"]
    for env in environments:
        built = command_architecture(env, "build")
        assert built == command_architecture(env, "deploy") == deploy_architecture(env), env
        assert built == load(REPO_ROOT / "template.yaml")["Parameters"]["Architecture"]["Default"]
        # The setting lives once, in the global section: neither command's section sets parameters.
        assert "parameter_overrides" not in config[env].get("build", {}).get("parameters", {}), env
        assert "parameter_overrides" not in config[env].get("deploy", {}).get("parameters", {}), env
        assert "Architecture=" in config[env]["global"]["parameters"]["parameter_overrides"], env


@pytest.mark.parametrize(
    ("sections", "expected"),
    [
        ({"global": 'parameter_overrides = "Architecture=x86_64 LogLevel=DEBUG"'}, ("x86_64", "x86_64")),
        # What `sam deploy --guided` saves replaces the global overrides for the deploy only.
        ({"global": 'parameter_overrides = "Architecture=x86_64"',
          "deploy": 'parameter_overrides = "ParameterKey=Architecture,ParameterValue=arm64"'}, ("x86_64", "arm64")),
        ({"global": 'parameter_overrides = "Architecture=x86_64"', "deploy": 'parameter_overrides = "LogLevel=INFO"'},
         ("x86_64", "arm64")),
        ({}, ("arm64", "arm64")),
    ],
)  # fmt: skip
def test_command_architecture_read_as_sam_reads_parameter_overrides(
    sections: dict[str, str], expected: tuple[str, str], tmp_path: Path
) -> None:
    path = tmp_path / "samconfig.toml"
    path.write_text("version = 0.1\n" + "".join(f"[dev.{k}.parameters]\n{v}\n" for k, v in sections.items()) + (
        "" if sections else "[dev.global.parameters]\nstack_name = \"x\"\n"))  # fmt: skip

    assert (command_architecture("dev", "build", path), command_architecture("dev", "deploy", path)) == expected


def test_command_architecture_unknown_environment_or_value_refused(tmp_path: Path) -> None:
    path = tmp_path / "samconfig.toml"
    path.write_text('version = 0.1\n[dev.global.parameters]\nparameter_overrides = "Architecture=sparc"\n')

    with pytest.raises(ConfigError, match="no environment 'prod'"):
        command_architecture("prod", "deploy", path)
    with pytest.raises(ConfigError, match="Architecture=sparc"):
        command_architecture("dev", "deploy", path)


def _build(tmp_path: Path, machine: int) -> Path:
    build = tmp_path / "build"
    (build / "PostgresSingleUserFunction" / "psycopg2").mkdir(parents=True)
    header = b"\x7fELF\x02\x01" + bytes(12) + machine.to_bytes(2, "little")
    (build / "PostgresSingleUserFunction" / "psycopg2" / "_psycopg.so").write_bytes(header)
    (build / "template.yaml").write_text(
        "Parameters:\n  Architecture:\n    Type: String\n    Default: arm64\n    AllowedValues:\n    - arm64\n"
        "    - x86_64\nResources:\n  F:\n    Type: AWS::Serverless::Function\n    Properties:\n"
        "      Architectures:\n      - Ref: Architecture\n"
    )
    return build


def test_pin_build_fixes_the_template_to_the_builds_architecture(tmp_path: Path) -> None:
    build = _build(tmp_path, 62)

    pin_build(build, "x86_64")

    template = load(build / "template.yaml")
    assert template["Parameters"]["Architecture"]["AllowedValues"] == ["x86_64"]
    assert template["Parameters"]["Architecture"]["Default"] == "x86_64"
    assert template["Resources"]["F"]["Properties"]["Architectures"] == [{"Ref": "Architecture"}]


def test_pin_build_other_architecture_refused_template_unchanged(tmp_path: Path) -> None:
    build = _build(tmp_path, 62)
    before = (build / "template.yaml").read_text()

    with pytest.raises(ReleaseError, match="another architecture than arm64"):
        pin_build(build, "arm64")
    assert (build / "template.yaml").read_text() == before
