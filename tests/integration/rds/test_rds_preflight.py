"""The preflight of secrets whose master RDS manages: it locates the master as a rotation does, reading only.

On each selected server kind of every engine (``db_kind``), with moto's RDS naming that loopback server.
"""

from __future__ import annotations

import pytest

from integration.preflight_support import check, failed_names, nothing_written, outcome, preflight
from integration.rds.support import READER, WRITER, RdsSetup, read_replica
from integration.support import secret_at

# Masters RDS manages, rotated with alternating users: the kinds whose engine offers it (RDS has no Valkey).
pytestmark = pytest.mark.strategies("alternating_users")


@pytest.mark.parametrize("placement", ["writer", "reader", "replica"])
def test_preflight_rds_managed_master_found_by_tag_all_ok_nothing_written(
    rds: RdsSetup, placement: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    kind = "instance" if placement == "replica" else "cluster"
    database = rds.managed_database(kind=kind, reader=READER if placement == "reader" else None)
    if placement == "replica":
        read_replica(rds.rds_client, database, READER)
    host = WRITER if placement == "writer" else READER
    account = rds.rotated_account(host=host, master_arn=database.master_arn, master_user=database.master_user)
    before = secret_at(rds.sm_client, account.arn, "AWSCURRENT")
    app = rds.function()

    arns = [account.arn, database.master_arn]
    with nothing_written(monkeypatch, arns, [rds.target.statement_log(rds.server)]) as unchanged:
        report = preflight(app, account.arn)

    assert report["ok"] is True, [check(report, name) for name in failed_names(report)]
    assert outcome(report, "master_secret") == ("ok", "secrets_manager")
    assert outcome(report, "master_privileges") == ("ok", "permission")
    unchanged.assert_nothing_written()
    assert {"DescribeDBClusters", "DescribeDBInstances"} & set(unchanged.guard.operations)  # RDS was asked
    assert secret_at(rds.sm_client, account.arn, "AWSCURRENT") == before
    assert not rds.target.logs_in(rds.server, {**before, "username": account.username + "_clone"}, rds.ca_bundle)


def test_preflight_rds_host_listed_for_another_cluster_master_secret_failed_confused_deputy(
    rds: RdsSetup, monkeypatch: pytest.MonkeyPatch
) -> None:
    ours = rds.managed_database(reader="ro.invalid")
    rds.managed_database(writer="other.invalid", reader=READER)
    account = rds.rotated_account(host=READER, master_arn=ours.master_arn, master_user=ours.master_user)

    with nothing_written(monkeypatch, [account.arn, ours.master_arn]) as unchanged:
        report = preflight(rds.function(), account.arn)

    assert report["ok"] is False
    assert failed_names(report) == ["master_secret"]
    assert outcome(report, "master_secret") == ("failed", "confused_deputy")
    assert "which RDS does not list as an endpoint of the DB cluster" in check(report, "master_secret")["fix"]
    assert check(report, "master_login")["status"] == "skipped"
    unchanged.assert_nothing_written()
