"""RDS through moto in-process: describing databases, RDS-managed master secrets, reader and replica endpoints.

The strategy runs on the fake engine; what RDS answers comes from moto's RDS (its managed master secrets
carry the ``aws:rds:`` tags), with endpoint addresses placed by ``rotation_local.rds_emulator``.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError

from rotation_core.errors import Category, ConfusedDeputyError, RdsError, SecretFormatError
from rotation_core.rds import CLUSTER_TAG, INSTANCE_TAG, RdsDirectory, tagged_database_arn
from rotation_core.rotator import Rotator
from rotation_core.secrets import SecretStore
from rotation_core.settings import Settings, Strategy
from rotation_core.strategies import AlternatingUsers
from rotation_local import emulator, rds_emulator, service
from unit.fakes import FakeDatabase, FakeEngine, value_at

PORT = 5432


class AuroraFakeEngine(FakeEngine):
    """The fake engine, also accepting Aurora PostgreSQL (what moto's clusters run)."""

    engine_names = frozenset({"postgres", "aurora-postgresql"})


WRITER, READER = "orders.cluster-abc.us-east-1.rds.amazonaws.com", "orders.cluster-ro-abc.us-east-1.rds.amazonaws.com"


@pytest.fixture
def rds_client(sm_client: Any) -> Iterator[Any]:
    """moto's RDS in the same in-process mock as ``sm_client``; no placement outlives the test."""
    rds_emulator.reset()
    yield boto3.client("rds", region_name=emulator.DEFAULT_REGION)
    rds_emulator.reset()


def make_cluster(rds_client: Any, name: str = "orders", *, engine: str = "aurora-postgresql", members: int = 2) -> Any:
    cluster = rds_client.create_db_cluster(
        DBClusterIdentifier=name, Engine=engine, MasterUsername="admin", ManageMasterUserPassword=True, Port=PORT
    )["DBCluster"]
    for number in range(1, members + 1):
        instance = rds_client.create_db_instance(
            DBInstanceIdentifier=f"{name}-{number}", DBClusterIdentifier=name, Engine=engine,
            DBInstanceClass="db.r6g.large",
        )["DBInstance"]  # fmt: skip
        rds_emulator.place(
            instance["DBInstanceArn"], address=f"{name}-{number}.abc.us-east-1.rds.amazonaws.com", port=PORT
        )
    return cluster


def make_instance(rds_client: Any, name: str = "ledger", *, engine: str = "postgres") -> Any:
    return rds_client.create_db_instance(
        DBInstanceIdentifier=name, Engine=engine, DBInstanceClass="db.t4g.micro", MasterUsername="admin",
        ManageMasterUserPassword=True, Port=PORT, AllocatedStorage=20,
    )["DBInstance"]  # fmt: skip


def test_rds_directory_cluster_lists_writer_reader_custom_and_members(rds_client: Any) -> None:
    cluster = make_cluster(rds_client)
    rds_emulator.place(cluster["DBClusterArn"], address=WRITER, reader=READER, custom=["reports.cluster-custom-abc"])

    database = RdsDirectory(rds_client).database(cluster["DBClusterArn"])

    assert (database.kind, database.engine, database.writer.host) == ("cluster", "aurora-postgresql", WRITER)
    assert [(e.host, e.kind) for e in database.endpoints] == [
        (WRITER, "cluster (writer) endpoint"),
        (READER, "reader endpoint"),
        ("reports.cluster-custom-abc", "custom endpoint"),
        ("orders-1.abc.us-east-1.rds.amazonaws.com", "cluster member instance"),
        ("orders-2.abc.us-east-1.rds.amazonaws.com", "cluster member instance"),
    ]
    assert database.endpoint_at(READER.upper() + ".", PORT) is not None  # DNS: case and a trailing dot aside
    assert database.endpoint_at(READER, PORT + 1) is None


def test_rds_directory_instance_lists_its_read_replicas(rds_client: Any) -> None:
    instance = make_instance(rds_client)
    rds_client.create_db_instance_read_replica(
        DBInstanceIdentifier="ledger-replica", SourceDBInstanceIdentifier="ledger"
    )

    database = RdsDirectory(rds_client).database(instance["DBInstanceArn"])

    assert database.kind == "instance"
    assert [e.kind for e in database.endpoints] == ["instance endpoint", "read replica"]
    assert database.endpoints[1].host.startswith("ledger-replica.")


def test_rds_directory_database_at_finds_writer_and_member_leads_to_cluster(rds_client: Any) -> None:
    cluster = make_cluster(rds_client)
    rds_emulator.place(cluster["DBClusterArn"], address=WRITER, reader=READER)
    make_instance(rds_client)
    directory = RdsDirectory(rds_client)

    found = directory.database_at(WRITER, PORT)
    member = directory.database_at("orders-2.abc.us-east-1.rds.amazonaws.com", PORT)

    assert found is not None
    assert found.arn == cluster["DBClusterArn"]
    assert member is not None
    assert member.arn == cluster["DBClusterArn"]
    assert directory.database_at(READER, PORT) is None  # a reader is never taken for a master's writer
    assert directory.database_at("db.internal.example", PORT) is None


def test_rds_directory_unknown_arn_raises_rds_error_naming_it(rds_client: Any) -> None:
    with pytest.raises(RdsError, match="RDS has no DB cluster") as raised:
        RdsDirectory(rds_client).database("arn:aws:rds:us-east-1:123456789012:cluster:gone")

    assert raised.value.category is Category.RDS


def test_rds_directory_access_denied_says_which_permission() -> None:
    class Denied:
        def describe_db_clusters(self, **_kwargs: Any) -> Any:
            raise ClientError({"Error": {"Code": "AccessDenied", "Message": "not authorized"}}, "DescribeDBClusters")

        def describe_db_instances(self, **_kwargs: Any) -> Any:
            raise AssertionError("not reached")

    with pytest.raises(RdsError, match="rds:DescribeDBClusters"):
        RdsDirectory(Denied()).database("arn:aws:rds:us-east-1:123456789012:cluster:orders")


def test_rds_directory_builds_no_client_until_first_call() -> None:
    built: list[str | None] = []

    def factory(endpoint: str | None) -> Any:
        built.append(endpoint)
        raise AssertionError("no client may be built")

    RdsDirectory(client_factory=factory)
    AlternatingUsers(FakeEngine(Settings(), FakeDatabase()), Settings(), rds=RdsDirectory(client_factory=factory))

    assert built == []


def test_tagged_database_arn_prefers_cluster_tag() -> None:
    assert tagged_database_arn({INSTANCE_TAG: "arn:db", CLUSTER_TAG: "arn:cluster"}) == "arn:cluster"
    assert tagged_database_arn({INSTANCE_TAG: "arn:db"}) == "arn:db"
    assert tagged_database_arn({"aws:rds:other": "x", "team": "payments"}) is None


# --- the strategy -------------------------------------------------------------------------------


@pytest.fixture
def rds_rotator(sm_client: Any, rds_client: Any, database: FakeDatabase) -> Callable[[], Rotator]:
    def make() -> Rotator:
        config = Settings(strategy=Strategy.ALTERNATING_USERS)
        strategy = AlternatingUsers(AuroraFakeEngine(config, database), config, rds=RdsDirectory(rds_client))
        return Rotator(SecretStore(sm_client), strategy)

    return make


def managed_master(sm_client: Any, resource: dict[str, Any], database: FakeDatabase) -> str:
    """The master secret RDS manages for ``resource``, holding the fake admin's credentials (as RDS would)."""
    arn: str = resource["MasterUserSecret"]["SecretArn"]
    value = {"username": "admin", "password": database.password_of("admin")}
    sm_client.put_secret_value(SecretId=arn, SecretString=json.dumps(value))
    return arn


def rotated_secret(sm_client: Any, database: FakeDatabase, *, host: str, master_arn: str, **extra: Any) -> str:
    value = {"engine": "postgres", "host": host, "port": PORT, "username": "app",
             "password": database.password_of("app"), "dbname": "orders", "masterarn": master_arn, **extra}  # fmt: skip
    arn: str = sm_client.create_secret(Name="app", SecretString=json.dumps(value))["ARN"]
    emulator.enable_rotation(arn)
    return arn


@pytest.mark.parametrize(
    "host", [WRITER, READER, "reports.cluster-custom-abc", "orders-2.abc.us-east-1.rds.amazonaws.com"]
)
def test_alternating_rds_managed_cluster_master_any_endpoint_of_cluster_rotates_via_writer(
    host: str, sm_client: Any, rds_client: Any, database: FakeDatabase, rds_rotator: Callable[[], Rotator]
) -> None:
    cluster = make_cluster(rds_client)
    rds_emulator.place(cluster["DBClusterArn"], address=WRITER, reader=READER, custom=["reports.cluster-custom-abc"])
    arn = rotated_secret(sm_client, database, host=host, master_arn=managed_master(sm_client, cluster, database))

    service.rotate(arn, rds_rotator().handle)

    current = value_at(sm_client, arn, "AWSCURRENT")
    assert (current["username"], current["host"]) == ("app_clone", host)
    assert database.password_of("app_clone") == current["password"]
    assert database.hosts[database.connections.index("admin")] == WRITER  # the master logs in at the writer


def test_alternating_rds_managed_instance_master_read_replica_host_accepted(
    sm_client: Any, rds_client: Any, database: FakeDatabase, rds_rotator: Callable[[], Rotator]
) -> None:
    instance = make_instance(rds_client)
    replica = rds_client.create_db_instance_read_replica(
        DBInstanceIdentifier="ledger-replica", SourceDBInstanceIdentifier="ledger"
    )["DBInstance"]
    arn = rotated_secret(
        sm_client,
        database,
        host=replica["Endpoint"]["Address"],
        master_arn=managed_master(sm_client, instance, database),
    )

    service.rotate(arn, rds_rotator().handle)

    assert database.hosts[database.connections.index("admin")] == instance["Endpoint"]["Address"]
    assert value_at(sm_client, arn, "AWSCURRENT")["username"] == "app_clone"


def test_alternating_rds_managed_master_host_of_another_cluster_refused_confused_deputy(
    sm_client: Any, rds_client: Any, database: FakeDatabase, rds_rotator: Callable[[], Rotator]
) -> None:
    ours, theirs = make_cluster(rds_client), make_cluster(rds_client, "billing")
    rds_emulator.place(ours["DBClusterArn"], address=WRITER, reader=READER)
    rds_emulator.place(theirs["DBClusterArn"], address="billing.cluster-abc", reader="billing.cluster-ro-abc")
    arn = rotated_secret(
        sm_client, database, host="billing.cluster-ro-abc", master_arn=managed_master(sm_client, ours, database)
    )

    with pytest.raises(ConfusedDeputyError, match="which RDS does not list as an endpoint of the DB cluster 'orders'"):
        service.rotate(arn, rds_rotator().handle)

    assert database.changes == []
    assert "admin" not in database.connections


def test_alternating_master_without_host_or_rds_tags_refused_secret_format(
    sm_client: Any, database: FakeDatabase, rds_rotator: Callable[[], Rotator]
) -> None:
    master = {"username": "admin", "password": database.password_of("admin")}
    master_arn = sm_client.create_secret(Name="master", SecretString=json.dumps(master))["ARN"]
    arn = rotated_secret(sm_client, database, host=WRITER, master_arn=master_arn)

    with pytest.raises(SecretFormatError, match='the master secret has no "host" and RDS does not manage it'):
        service.rotate(arn, rds_rotator().handle)

    assert database.changes == []


def test_alternating_rds_managed_master_of_other_engine_refused(
    sm_client: Any, rds_client: Any, database: FakeDatabase, rds_rotator: Callable[[], Rotator]
) -> None:
    cluster = make_cluster(rds_client, engine="aurora-mysql", members=0)
    rds_emulator.place(cluster["DBClusterArn"], address=WRITER, reader=READER)
    arn = rotated_secret(sm_client, database, host=WRITER, master_arn=managed_master(sm_client, cluster, database))

    with pytest.raises(ConfusedDeputyError, match="runs the engine 'aurora-mysql'"):
        service.rotate(arn, rds_rotator().handle)


def test_alternating_master_with_host_reader_secret_proven_by_listing(
    sm_client: Any, rds_client: Any, database: FakeDatabase, rds_rotator: Callable[[], Rotator]
) -> None:
    """A master secret of AWS's format (host = the cluster endpoint): RDS is asked which cluster that is."""
    cluster = make_cluster(rds_client)
    rds_emulator.place(cluster["DBClusterArn"], address=WRITER, reader=READER)
    master = {"engine": "postgres", "host": WRITER, "port": PORT, "username": "admin",
              "password": database.password_of("admin")}  # fmt: skip
    master_arn = sm_client.create_secret(Name="master", SecretString=json.dumps(master))["ARN"]
    arn = rotated_secret(sm_client, database, host=READER, master_arn=master_arn)

    service.rotate(arn, rds_rotator().handle)

    assert database.hosts[database.connections.index("admin")] == WRITER
    assert value_at(sm_client, arn, "AWSCURRENT")["username"] == "app_clone"


def test_alternating_same_host_master_makes_no_rds_call(
    sm_client: Any, database: FakeDatabase, make_secret: Callable[..., str]
) -> None:
    class NoRds:
        def describe_db_clusters(self, **_kwargs: Any) -> Any:
            raise AssertionError("RDS must not be called when the master names the secret's own host")

        describe_db_instances = describe_db_clusters

    config = Settings(strategy=Strategy.ALTERNATING_USERS)
    strategy = AlternatingUsers(FakeEngine(config, database), config, rds=RdsDirectory(NoRds()))
    arn = make_secret(with_master=True)

    service.rotate(arn, Rotator(SecretStore(sm_client), strategy).handle)

    assert value_at(sm_client, arn, "AWSCURRENT")["username"] == "app_clone"


def test_configuration_test_rds_managed_master_logs_in_at_writer(
    sm_client: Any, rds_client: Any, database: FakeDatabase, rds_rotator: Callable[[], Rotator]
) -> None:
    cluster = make_cluster(rds_client)
    rds_emulator.place(cluster["DBClusterArn"], address=WRITER, reader=READER)
    arn = rotated_secret(sm_client, database, host=READER, master_arn=managed_master(sm_client, cluster, database))

    service.configuration_test(arn, rds_rotator().handle, copy_current=False)

    assert list(zip(database.connections, database.hosts, strict=True)) == [("app", READER), ("admin", WRITER)]
    assert database.changes == []


class EngineWithoutRds(FakeEngine):
    """The fake engine as an engine RDS never manages (Valkey's spec: ``uses_rds=False``; its role may not call RDS)."""

    uses_rds = False


@pytest.mark.parametrize(
    ("master_place", "refusal", "message"),
    [
        # Another host than the rotated secret's: the same-server refusal, without RDS's part.
        ({"host": WRITER, "port": PORT}, ConfusedDeputyError,
         r"^the master secret names another server than the secret being rotated\. A rotation never moves"),
        # No host, where an RDS engine would look the master up by its aws:rds: tag.
        ({}, SecretFormatError, r'^the master secret has no "host": add the "host" and "port"'),
    ],
    ids=["master-on-another-host", "master-without-host"],
)  # fmt: skip
def test_alternating_engine_without_rds_master_elsewhere_refused_without_asking_rds(
    master_place: dict[str, Any], refusal: type[Exception], message: str, sm_client: Any, database: FakeDatabase
) -> None:
    built: list[str | None] = []

    def factory(endpoint: str | None) -> Any:
        built.append(endpoint)
        raise AssertionError("an engine without RDS never builds an RDS client")

    config = Settings(strategy=Strategy.ALTERNATING_USERS)
    strategy = AlternatingUsers(EngineWithoutRds(config, database), config, rds=RdsDirectory(client_factory=factory))
    master = {"engine": "postgres", "username": "admin", "password": database.password_of("admin"), **master_place}
    master_arn = sm_client.create_secret(Name="master", SecretString=json.dumps(master))["ARN"]
    arn = rotated_secret(sm_client, database, host=READER, master_arn=master_arn)

    with pytest.raises(refusal, match=message):
        service.rotate(arn, Rotator(SecretStore(sm_client), strategy).handle)

    assert built == []
    assert database.changes == []
    assert "admin" not in database.connections
