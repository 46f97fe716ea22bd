"""RDS databases in moto that name a local server, and the master secrets RDS manages for them.

moto's RDS creates a master secret for ``ManageMasterUserPassword`` (tagged ``aws:rds:primaryDBInstanceArn``
or ``aws:rds:primaryDBClusterArn``, holding only ``username`` and ``password``), as RDS does; the helpers
give it the credentials of a master made on the local server, as RDS would hold the real ones.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

from helpers import LeakGuard
from integration.support import Account, create_account, unique
from rotation_local import rds_emulator
from rotation_local.targets import DatabaseTarget

WRITER, READER = "127.0.0.1", "localhost"  # one server; the test CA's certificate names both
#: The RDS engine names of each local target's engine: (DB instance, DB cluster), and an instance engine version
#: (moto knows no default one for MariaDB).
RDS_ENGINES = {"postgres": ("postgres", "aurora-postgresql"), "mysql": ("mariadb", "aurora-mysql")}
ENGINE_VERSIONS = {"postgres": "15.8", "mariadb": "10.11.9"}


@dataclass
class RdsDatabase:
    arn: str  # the DB instance or cluster
    master_arn: str  # the master secret RDS manages for it
    master_user: str
    identifier: str


def managed_database(
    target: DatabaseTarget,
    server: Any,
    sm_client: Any,
    rds_client: Any,
    leak_guard: LeakGuard,
    *,
    kind: str = "cluster",
    writer: str | None = WRITER,
    reader: str | None = None,
    custom: Iterable[str] = (),
    members: Iterable[str] = (),
) -> RdsDatabase:
    """A DB cluster (``members``: addresses of its instances) or instance on ``server``, RDS managing its master."""
    master_user, master_password = unique("rdsadmin")[:24], secrets.token_urlsafe(24)
    leak_guard.add(master_password)
    target.create_master(server, master_user, master_password)
    instance_engine, cluster_engine = RDS_ENGINES[target.engine]
    identifier = unique("db").replace("_", "-")
    if kind == "cluster":
        resource = rds_client.create_db_cluster(
            DBClusterIdentifier=identifier, Engine=cluster_engine, MasterUsername=master_user,
            ManageMasterUserPassword=True, Port=server.port,
        )["DBCluster"]  # fmt: skip
        arn = resource["DBClusterArn"]
        for number, address in enumerate(members, start=1):
            member = rds_client.create_db_instance(
                DBInstanceIdentifier=f"{identifier}-{number}", DBClusterIdentifier=identifier, Engine=cluster_engine,
                DBInstanceClass="db.r6g.large",
            )["DBInstance"]  # fmt: skip
            rds_emulator.place(member["DBInstanceArn"], address=address, port=server.port)
    else:
        resource = rds_client.create_db_instance(
            DBInstanceIdentifier=identifier, Engine=instance_engine, EngineVersion=ENGINE_VERSIONS[instance_engine],
            DBInstanceClass="db.t4g.micro",
            MasterUsername=master_user, ManageMasterUserPassword=True, Port=server.port, AllocatedStorage=20,
        )["DBInstance"]  # fmt: skip
        arn = resource["DBInstanceArn"]
    rds_emulator.place(arn, address=writer, reader=reader, custom=custom)
    master_arn: str = resource["MasterUserSecret"]["SecretArn"]
    sm_client.put_secret_value(
        SecretId=master_arn, SecretString=json.dumps({"username": master_user, "password": master_password})
    )
    return RdsDatabase(arn=arn, master_arn=master_arn, master_user=master_user, identifier=identifier)


def read_replica(rds_client: Any, database: RdsDatabase, address: str) -> str:
    """A read replica of the DB instance, answering at ``address``; returns its ARN."""
    replica = rds_client.create_db_instance_read_replica(
        DBInstanceIdentifier=database.identifier + "-replica", SourceDBInstanceIdentifier=database.identifier
    )["DBInstance"]
    arn: str = replica["DBInstanceArn"]
    rds_emulator.place(arn, address=address)
    return arn


def rotated_account(
    target: DatabaseTarget,
    server: Any,
    sm_client: Any,
    leak_guard: LeakGuard,
    *,
    host: str,
    master_arn: str,
    master_user: str,
) -> Account:
    """A login and its secret naming ``host`` and ``masterarn``; the master may manage it."""
    username = unique("app")[:20]
    account = create_account(
        target, server, sm_client, leak_guard, username=username, master_username=master_user,
        host=host, masterarn=master_arn,
    )  # fmt: skip
    target.allow_master(server, master_user, username)
    account.master_arn, account.master_user = master_arn, master_user
    return account


@dataclass
class RdsSetup:
    """What an RDS test works with: the engine's local target and server, both clients, the function."""

    target: DatabaseTarget
    server: Any
    sm_client: Any
    rds_client: Any
    leak_guard: LeakGuard
    function: Callable[..., ModuleType]  # the engine's function, alternating users, reaching moto's RDS
    ca_bundle: Path

    def managed_database(self, **placement: Any) -> RdsDatabase:
        """:func:`managed_database` on this test's server (``placement``: its keyword arguments)."""
        return managed_database(self.target, self.server, self.sm_client, self.rds_client, self.leak_guard, **placement)

    def rotated_account(self, *, host: str, master_arn: str, master_user: str) -> Account:
        """:func:`rotated_account` on this test's server."""
        return rotated_account(
            self.target, self.server, self.sm_client, self.leak_guard,
            host=host, master_arn=master_arn, master_user=master_user,
        )  # fmt: skip
