"""RDS-managed master secrets and reader/replica endpoints, through moto's RDS and Secrets Manager over HTTP.

Every test runs on each selected server kind of every engine (``db_kind``): RDS's answers name that
loopback server (writer ``127.0.0.1``, reader ``localhost``), the real function module rotates, and the
real server says who logs in.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from integration.rds.support import READER, WRITER, RdsSetup, read_replica
from integration.support import rotate, secret_at, stages, unique
from rotation_core.errors import Category, RotationError
from rotation_local import service
from rotation_local.targets import DatabaseTarget

# Masters RDS manages, rotated with alternating users: the kinds whose engine offers it (RDS has no Valkey).
pytestmark = pytest.mark.strategies("alternating_users")


def assert_rotated_twice(
    app: Any, db_target: DatabaseTarget, db_server: Any, sm_client: Any, arn: str, ca: Path
) -> None:
    """Both turns (the clone created, then the original again) end with both users logging in."""
    original = secret_at(sm_client, arn, "AWSCURRENT")
    rotate(app, arn)
    clone = secret_at(sm_client, arn, "AWSCURRENT")
    assert clone["username"] == original["username"] + "_clone"
    assert clone["host"] == original["host"]
    assert db_target.logs_in(db_server, clone, ca)
    rotate(app, arn)
    current = secret_at(sm_client, arn, "AWSCURRENT")
    assert current["username"] == original["username"]
    assert db_target.logs_in(db_server, current, ca)
    assert db_target.logs_in(db_server, secret_at(sm_client, arn, "AWSPREVIOUS"), ca)


@pytest.mark.parametrize("kind", ["instance", "cluster"])
def test_rds_managed_master_without_host_rotates_at_writer_found_by_tag(
    rds: RdsSetup, kind: str, caplog: pytest.LogCaptureFixture
) -> None:
    database = rds.managed_database(kind=kind)
    master_value = secret_at(rds.sm_client, database.master_arn, "AWSCURRENT")
    tag = f"aws:rds:primaryDB{kind.capitalize()}Arn"
    tags = {t["Key"]: t["Value"] for t in rds.sm_client.describe_secret(SecretId=database.master_arn)["Tags"]}
    account = rds.rotated_account(host=WRITER, master_arn=database.master_arn, master_user=database.master_user)

    assert sorted(master_value) == ["password", "username"]  # what RDS stores: no host, port or engine
    assert tags[tag] == database.arn
    assert_rotated_twice(rds.function(), rds.target, rds.server, rds.sm_client, account.arn, rds.ca_bundle)
    assert f"the master secret is managed by RDS: its credentials log in at the writer of the DB {kind}" in caplog.text


@pytest.mark.parametrize(
    ("placement", "endpoint_kind"),
    [
        ({"reader": READER}, "reader endpoint"),
        ({"reader": "ro.invalid", "custom": [READER]}, "custom endpoint"),
        ({"reader": "ro.invalid", "members": [WRITER, READER]}, "cluster member instance"),
    ],
    ids=["reader", "custom", "member"],
)
def test_rds_managed_cluster_master_secret_on_other_endpoint_of_cluster_accepted_password_set_at_writer(
    rds: RdsSetup, placement: dict[str, Any], endpoint_kind: str, caplog: pytest.LogCaptureFixture
) -> None:
    database = rds.managed_database(**placement)
    account = rds.rotated_account(host=READER, master_arn=database.master_arn, master_user=database.master_user)

    assert_rotated_twice(rds.function(), rds.target, rds.server, rds.sm_client, account.arn, rds.ca_bundle)
    assert f"RDS lists the rotated secret's host as the {endpoint_kind} of the DB cluster" in caplog.text
    writers = {record.__dict__.get("writer") for record in caplog.records if "RDS lists" in record.getMessage()}
    assert writers == {WRITER}  # the master always changed passwords at the writer


def test_rds_managed_instance_master_read_replica_host_accepted(
    rds: RdsSetup, caplog: pytest.LogCaptureFixture
) -> None:
    database = rds.managed_database(kind="instance")
    read_replica(rds.rds_client, database, READER)
    account = rds.rotated_account(host=READER, master_arn=database.master_arn, master_user=database.master_user)

    assert_rotated_twice(rds.function(), rds.target, rds.server, rds.sm_client, account.arn, rds.ca_bundle)
    assert "RDS lists the rotated secret's host as the read replica of the DB instance" in caplog.text


def test_rds_host_listed_for_another_cluster_refused_confused_deputy_nothing_changed(rds: RdsSetup) -> None:
    """The rotated secret names a reader RDS lists for another cluster: never proof of the master's."""
    ours = rds.managed_database(reader="ro.invalid")
    rds.managed_database(writer="other.invalid", reader=READER)
    account = rds.rotated_account(host=READER, master_arn=ours.master_arn, master_user=ours.master_user)
    original = secret_at(rds.sm_client, account.arn, "AWSCURRENT")

    with pytest.raises(RotationError) as raised:
        rotate(rds.function(), account.arn)

    assert raised.value.category is Category.CONFUSED_DEPUTY
    assert "which RDS does not list as an endpoint of the DB cluster" in raised.value.message
    assert not rds.target.logs_in(rds.server, {**original, "username": account.username + "_clone"}, rds.ca_bundle)
    assert rds.target.logs_in(rds.server, original, rds.ca_bundle)


def test_rds_master_without_host_or_tags_refused_secret_format(rds: RdsSetup) -> None:
    database = rds.managed_database()
    value = secret_at(rds.sm_client, database.master_arn, "AWSCURRENT")  # username and password only, no tags
    untagged = rds.sm_client.create_secret(Name=unique("master"), SecretString=json.dumps(value))["ARN"]
    account = rds.rotated_account(host=WRITER, master_arn=untagged, master_user=database.master_user)
    token = service.rotate(account.arn, lambda e: None, steps=())

    with pytest.raises(RotationError, match='the master secret has no "host" and RDS does not manage it') as raised:
        rotate(rds.function(), account.arn, token=token)

    assert raised.value.category is Category.SECRET_FORMAT
    assert "AWSCURRENT" not in stages(rds.sm_client, account.arn)[token]
    assert rds.target.logs_in(rds.server, secret_at(rds.sm_client, account.arn, "AWSCURRENT"), rds.ca_bundle)


def test_rds_master_in_aws_format_with_cluster_host_reader_secret_proven_by_listing(rds: RdsSetup) -> None:
    """A master secret that names the cluster endpoint itself (AWS's template format): RDS says which cluster."""
    database = rds.managed_database(reader=READER)
    managed = secret_at(rds.sm_client, database.master_arn, "AWSCURRENT")
    value = rds.target.secret(rds.server, managed["username"], managed["password"])
    assert value["host"] == WRITER
    master_arn = rds.sm_client.create_secret(Name=unique("master"), SecretString=json.dumps(value))["ARN"]
    account = rds.rotated_account(host=READER, master_arn=master_arn, master_user=database.master_user)

    assert_rotated_twice(rds.function(), rds.target, rds.server, rds.sm_client, account.arn, rds.ca_bundle)


def test_rds_master_in_aws_format_reader_secret_without_rds_database_refused(rds: RdsSetup) -> None:
    """Host names alone never prove anything: 127.0.0.1 and localhost are one server, but RDS knows neither."""
    master_user, master_password = unique("master")[:20], "Master-" + unique("pw")
    rds.leak_guard.add(master_password)
    rds.target.create_master(rds.server, master_user, master_password)
    value = rds.target.secret(rds.server, master_user, master_password)
    master_arn = rds.sm_client.create_secret(Name=unique("master"), SecretString=json.dumps(value))["ARN"]
    account = rds.rotated_account(host=READER, master_arn=master_arn, master_user=master_user)

    with pytest.raises(RotationError, match="RDS lists no DB cluster or instance whose writer endpoint is") as raised:
        rotate(rds.function(), account.arn)

    assert raised.value.category is Category.CONFUSED_DEPUTY


def test_configuration_test_rds_managed_master_reader_secret_passes_changes_nothing(
    rds: RdsSetup, caplog: pytest.LogCaptureFixture
) -> None:
    database = rds.managed_database(reader=READER)
    account = rds.rotated_account(host=READER, master_arn=database.master_arn, master_user=database.master_user)
    app = rds.function()
    before = stages(rds.sm_client, account.arn)

    for copy_current in (False, True):
        service.configuration_test(account.arn, lambda e: app.lambda_handler(dict(e), None), copy_current=copy_current)

    assert stages(rds.sm_client, account.arn) == before
    clone = {**secret_at(rds.sm_client, account.arn, "AWSCURRENT"), "username": account.username + "_clone"}
    assert not rds.target.logs_in(rds.server, clone, rds.ca_bundle)  # no clone was made
    assert caplog.text.count("checked: the master credentials log in") == 2
