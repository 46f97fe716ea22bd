"""The deploy docs tell the truth: generated parts in step with the template and the release record, the
upgrade notes from a real comparison of templates, one stack name and its exports in every path, every
parameter the docs name settable in the SAR example, and the `ssl` table matching the parser."""

from __future__ import annotations

import hashlib
import json
import re
import subprocess
from typing import Any

import pytest

from cloudformation import load, loads
from helpers import REPO_ROOT
from rotation_core.engines.base import TlsMode
from rotation_core.errors import SecretFormatError
from rotation_core.registry import engines
from rotation_core.settings import Settings
from rotation_release import compare, docs, examples
from rotation_release.cfn import resources_of_type

TEMPLATE = REPO_ROOT / "template.yaml"
DEPLOY_FROM_SAR = REPO_ROOT / "examples" / "deploy-from-sar.yaml"
ATTACH = REPO_ROOT / "examples" / "attach-rotation.yaml"
PAGES = [REPO_ROOT / "README.md", REPO_ROOT / "examples" / "cdk" / "README.md", *sorted(REPO_ROOT.glob("docs/**/*.md"))]


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    return load(TEMPLATE)


def test_generated_blocks_and_examples_match_the_template_and_release_record() -> None:
    stale = docs.stale_blocks() + examples.stale_examples()

    assert stale == [], "run `make template` (and `make release-sizes` after `make release-artifacts`)"


def test_release_sizes_record_covers_every_file_a_release_builds() -> None:
    record = docs.load_sizes()
    names = docs.Names(docs.release_project.load())
    expected = {"layer.zip", "cdx.json", "SHA256SUMS"} | {
        names.function(arch, folder).removeprefix(names.prefix + "-")
        for arch in docs.ARCHITECTURES
        for folder in docs.function_folders()
    }

    assert set(record["files"]) == expected
    assert all(entry["bytes"] > 0 for entry in record["files"].values())
    assert all(entry["unzipped_bytes"] > 0 for key, entry in record["files"].items() if key.endswith(".zip"))


def test_upgrade_baseline_is_the_0_1_0_template_as_committed() -> None:
    text = compare.BASELINE.read_bytes()

    assert hashlib.sha256(text).hexdigest() == compare.BASELINE_SHA256
    shown = subprocess.run(["git", "-C", str(REPO_ROOT), "show", f"{compare.BASELINE_COMMIT}:template.yaml"],
                           capture_output=True, check=False)  # fmt: skip
    if shown.returncode != 0:
        pytest.skip(f"this clone has no commit {compare.BASELINE_COMMIT[:7]} (shallow?); the digest above holds")
    assert shown.stdout == text


def test_upgrade_notes_name_every_difference_of_two_templates() -> None:
    old = {
        "Parameters": {"A": {"Type": "String", "Default": "x"}, "Gone": {"Type": "String"}},
        "Conditions": {"On": {"Fn::Equals": [{"Ref": "A"}, "x"]}},
        "Resources": {
            "R": {"Type": "AWS::IAM::Role", "Properties": {"Policies": [{"PolicyName": "p", "PolicyDocument": {
                "Statement": [{"Effect": "Allow", "Action": "logs:PutLogEvents", "Resource": "*"}]}}]}},
            "Old": {"Type": "AWS::SNS::Topic"},
        },
        "Outputs": {"O": {"Value": "v", "Export": {"Name": {"Fn::Sub": "${AWS::StackName}-O"}}}},
    }  # fmt: skip
    new = json.loads(json.dumps(old))
    new["Parameters"]["A"]["Default"] = "y"
    new["Parameters"]["B"] = {"Type": "String", "Default": ""}
    del new["Parameters"]["Gone"]
    del new["Resources"]["Old"]
    new["Resources"]["Alarm"] = {"Type": "AWS::CloudWatch::Alarm", "Condition": "On"}
    statements = new["Resources"]["R"]["Properties"]["Policies"][0]["PolicyDocument"]["Statement"]
    statements.append({"Effect": "Allow", "Action": ["rds:DescribeDBInstances"], "Resource": "*"})
    new["Outputs"]["O"]["Export"]["Name"] = {"Fn::Sub": "${AWS::StackName}-Other"}

    notes = compare.render_upgrade(old, new, "old")

    assert "1 × `AWS::CloudWatch::Alarm`, not created with the defaults (`A`=y): `Alarm`" in notes
    assert "**Resources removed:** `Old`" in notes
    assert "`B` (default empty)" in notes
    assert "**Parameters removed:** `Gone`" in notes
    assert "`A` (Default: `x` → `y`)" in notes
    assert "**export names changed:** `O`" in notes
    assert "`R` gains `rds:DescribeDBInstances` on `*`" in notes
    assert "logs:PutLogEvents" not in notes  # unchanged grants are not listed


def test_deploy_page_says_nothing_is_published_and_leads_with_the_clone() -> None:
    page = (REPO_ROOT / "docs" / "deploy.md").read_text()
    readme = (REPO_ROOT / "README.md").read_text()
    deploy_section = readme[readme.index("## Deploy") : readme.index("## Documentation")]

    assert "Nothing has been published yet" in page
    assert page.index("## From a clone") < page.index("## A published release")
    assert "nothing has been published" in " ".join(deploy_section.lower().split())
    assert deploy_section.index("make deploy") < deploy_section.index("deploy-from-sar.yaml")
    assert "examples/cdk" in deploy_section
    assert "Python 3.13" in page
    assert "Python 3.13" in deploy_section


def test_one_stack_name_and_the_exports_docs_read_exist_in_every_path(template: dict[str, Any]) -> None:
    exports = {o["Export"]["Name"]["Fn::Sub"] for o in template["Outputs"].values() if "Export" in o}
    sar = load(DEPLOY_FROM_SAR)
    samconfig = (REPO_ROOT / "samconfig.toml").read_text()

    assert 'stack_name = "secrets-rotation"' in samconfig
    assert load(ATTACH)["Parameters"]["RotationStackName"]["Default"] == examples.STACK_NAME == "secrets-rotation"
    assert {o["Export"]["Name"]["Fn::Sub"] for o in sar["Outputs"].values() if "Export" in o} == exports
    for page in PAGES:
        text = page.read_text()
        assert not re.search(r"\bsecret-rotation\b", text), page  # the old, other name
        for name in re.findall(r"secrets-rotation-([A-Za-z]+FunctionArn)", text):
            assert "${AWS::StackName}-" + name in exports, (page, name)


def test_sar_example_passes_every_parameter_with_the_templates_defaults(template: dict[str, Any]) -> None:
    sar = load(DEPLOY_FROM_SAR)
    (application,) = resources_of_type(sar, "AWS::Serverless::Application").values()
    passed = application["Properties"]["Parameters"]

    assert set(passed) == set(template["Parameters"]) - examples.NOT_PASSED
    for name, value in passed.items():
        spec = template["Parameters"][name]
        assert sar["Parameters"][name] == spec, name
        expected = {"Ref": name} if spec["Type"] != "CommaDelimitedList" else {"Fn::Join": [",", {"Ref": name}]}
        assert value == expected, name
    for output in sar["Outputs"].values():
        assert output["Value"]["Fn::GetAtt"][1].removeprefix("Outputs.") in template["Outputs"]


def test_every_parameter_a_page_names_is_settable_in_each_example(template: dict[str, Any]) -> None:
    sar = load(DEPLOY_FROM_SAR)
    named = {
        word for page in PAGES for word in re.findall(r"[A-Za-z]+", page.read_text()) if word in template["Parameters"]
    }

    assert "PostgresMasterSecrets" in named
    assert "PermissionsBoundary" in named
    # The SAR application of an architecture fixes Architecture: it is chosen with ApplicationId.
    assert named - examples.NOT_PASSED <= set(sar["Parameters"])
    assert "ApplicationId" in sar["Parameters"]


SSL_TABLE_HEAD = '| `"ssl"` in the secret | AWS\'s functions | ours |'


def _ssl_rows() -> list[tuple[list[str], str]]:
    page = (REPO_ROOT / "docs" / "switching-from-aws.md").read_text()
    table = page[page.index(SSL_TABLE_HEAD) :].split("\n\n", 1)[0].splitlines()[2:]
    rows = []
    for line in table:
        first, _aws, ours = (cell.strip() for cell in line.strip("|").split("|"))
        values = re.findall(r"`([^`]*)`", first) + (["<absent>"] if first.startswith("absent") else [])
        rows.append((values, ours))
    return rows


@pytest.mark.parametrize("engine", sorted(engines()))
def test_switching_page_ssl_values_read_as_the_parser_reads_them(engine: str) -> None:
    database = engines()[engine].load()(Settings())
    base = {"host": "db.example.com", "username": "app", "password": "x" * 12}
    rows = _ssl_rows()
    checked = 0

    assert len(rows) == 6
    for values, ours in rows:
        for value in values:
            secret = dict(base) if value == "<absent>" else {**base, "ssl": json.loads(value)}
            if "refused" in ours:
                with pytest.raises(SecretFormatError, match='"ssl"'):
                    database.parse_login(secret, "current")
            else:
                expected = TlsMode.VERIFY_FULL if "verify-full" in ours else TlsMode.DISABLE
                assert "without TLS" in ours or expected is TlsMode.VERIFY_FULL
                assert database.parse_login(secret, "current").tls is expected, value
            checked += 1
    assert checked >= 20


def test_cdk_readme_and_deploy_page_link_each_other() -> None:
    assert "examples/cdk" in (REPO_ROOT / "docs" / "deploy.md").read_text()
    assert "docs/deploy.md#permissions-boundary" in (REPO_ROOT / "examples" / "cdk" / "README.md").read_text()
    assert loads((REPO_ROOT / "examples" / "cdk" / "cdk.json").read_text())["context"]["source"] == "template"
