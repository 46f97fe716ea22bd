"""Amazon RDS access: the only module that calls the RDS API.

The alternating-users strategy asks RDS two questions, and only when the secrets alone cannot answer
them: where is the database a master secret belongs to (an RDS-managed master secret holds no host,
only the tags ``aws:rds:primaryDBInstanceArn`` / ``aws:rds:primaryDBClusterArn`` that RDS set on it),
and which endpoints reach that database (the rotated secret may name a reader, custom or instance
endpoint, or a read replica, instead of the writer). Both answers come from ``DescribeDBClusters`` and
``DescribeDBInstances`` — never from comparing host names with each other — so whoever can edit a
rotated secret cannot make a credential go anywhere RDS does not list for that database.

The client is built on first use (like :class:`rotation_core.secrets.SecretStore`'s): importing this
module or building a :class:`RdsDirectory` connects to nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, NoReturn, Protocol

from rotation_core.aws import ServiceAccess, bounded_client
from rotation_core.errors import RdsError, describe
from rotation_core.log import redact

#: The tags RDS puts on a master secret it manages (``ManageMasterUserPassword``). Tag keys starting with
#: ``aws:`` are reserved: only AWS services set them, so they are as trustworthy as RDS's own answers.
INSTANCE_TAG = "aws:rds:primaryDBInstanceArn"
CLUSTER_TAG = "aws:rds:primaryDBClusterArn"

_PAGE_SIZE = 100
_MAX_PAGES = 100  # 10,000 instances or clusters: far beyond RDS's per-region quotas

_HINTS = {
    "AccessDenied": "grant the function's role rds:DescribeDBInstances and rds:DescribeDBClusters (template.yaml "
    "does for the alternating-users functions)",
    "AccessDeniedException": "grant the function's role rds:DescribeDBInstances and rds:DescribeDBClusters "
    "(template.yaml does for the alternating-users functions)",
    "Throttling": "the account is over its RDS API request rate; the rotation can be retried",
    "ThrottlingException": "the account is over its RDS API request rate; the rotation can be retried",
    "InternalFailure": "RDS failed; the rotation can be retried",
}


class RdsClient(Protocol):
    """The two boto3 RDS client methods this module calls."""

    def describe_db_instances(self, **kwargs: Any) -> Mapping[str, Any]: ...

    def describe_db_clusters(self, **kwargs: Any) -> Mapping[str, Any]: ...


@dataclass(frozen=True)
class RdsEndpoint:
    """One address RDS lists for a database, and what it is (writer, reader, custom, instance, read replica)."""

    host: str
    port: int
    kind: str

    def reaches(self, host: str, port: int) -> bool:
        """Is ``host:port`` this endpoint? DNS names compare case-insensitively, a trailing dot aside."""
        return _dns(host) == _dns(self.host) and port == self.port


@dataclass(frozen=True)
class RdsDatabase:
    """An RDS DB instance or DB cluster as RDS describes it: its engine, writer, and every endpoint."""

    arn: str
    identifier: str
    kind: str  # "instance" or "cluster"
    engine: str
    writer: RdsEndpoint
    endpoints: tuple[RdsEndpoint, ...]  # the writer first

    def endpoint_at(self, host: str, port: int) -> RdsEndpoint | None:
        return next((endpoint for endpoint in self.endpoints if endpoint.reaches(host, port)), None)

    @property
    def title(self) -> str:
        """'the DB cluster orders' (identifiers are not secret; they are escaped for messages)."""
        return f"the DB {self.kind} {describe(self.identifier)}"


def default_client_factory(endpoint_url: str | None) -> RdsClient:
    """An RDS client with bounded timeouts; boto3 also honours AWS_ENDPOINT_URL_RDS."""
    client: RdsClient = bounded_client("rds", endpoint_url)
    return client


def tagged_database_arn(tags: Mapping[str, str]) -> str | None:
    """The DB cluster or instance ARN RDS tagged a master secret with, if it manages that secret."""
    for key in (CLUSTER_TAG, INSTANCE_TAG):
        value = tags.get(key, "").strip()
        if value:
            return value
    return None


class RdsDirectory(ServiceAccess["RdsClient"]):
    """Describes RDS databases: by ARN (a master secret's tag) or by the writer endpoint a master secret names."""

    default_client_factory = staticmethod(default_client_factory)

    def database(self, arn: str) -> RdsDatabase:
        """The DB cluster or instance with this ARN (what a master secret's ``aws:rds:`` tag names)."""
        if ":cluster:" in arn:
            clusters = self._clusters(DBClusterIdentifier=arn)
            if not clusters:
                _not_found("DB cluster", arn)
            return self._cluster_database(clusters[0])
        instances = self._instances(DBInstanceIdentifier=arn)
        if not instances:
            _not_found("DB instance", arn)
        return self._instance_database(instances[0])

    def database_at(self, host: str, port: int) -> RdsDatabase | None:
        """The DB cluster or instance whose writer (cluster or instance endpoint) is ``host:port``; None if none.

        Lists the region's clusters and instances; a cluster member's instance endpoint leads to its cluster.
        """
        for cluster in self._clusters():
            if _writer_of_cluster(cluster).reaches(host, port):
                return self._cluster_database(cluster)
        for instance in self._instances():
            endpoint = _instance_endpoint(instance, "instance")
            if endpoint is not None and endpoint.reaches(host, port):
                return self._instance_database(instance)
        return None

    # -- building the answers ----------------------------------------------------------------------

    def _cluster_database(self, cluster: Mapping[str, Any]) -> RdsDatabase:
        arn = str(cluster.get("DBClusterArn", ""))
        writer = _writer_of_cluster(cluster)
        endpoints = [writer]
        port = writer.port
        reader = cluster.get("ReaderEndpoint")
        if isinstance(reader, str) and reader:
            endpoints.append(RdsEndpoint(reader, port, "reader endpoint"))
        endpoints += [
            RdsEndpoint(custom, port, "custom endpoint")
            for custom in cluster.get("CustomEndpoints", [])
            if isinstance(custom, str) and custom
        ]
        identifier = str(cluster.get("DBClusterIdentifier", ""))
        if cluster.get("DBClusterMembers") and identifier:
            for instance in self._instances(Filters=[{"Name": "db-cluster-id", "Values": [identifier]}]):
                member = _instance_endpoint(instance, "cluster member instance")
                if member is not None:
                    endpoints.append(member)
        return RdsDatabase(
            arn=arn,
            identifier=identifier,
            kind="cluster",
            engine=str(cluster.get("Engine", "")),
            writer=writer,
            endpoints=tuple(endpoints),
        )

    def _instance_database(self, instance: Mapping[str, Any]) -> RdsDatabase:
        cluster_id = instance.get("DBClusterIdentifier")
        if isinstance(cluster_id, str) and cluster_id:
            # An Aurora (or Multi-AZ DB cluster) member: the database is the cluster.
            clusters = self._clusters(DBClusterIdentifier=cluster_id)
            if clusters:
                return self._cluster_database(clusters[0])
        arn = str(instance.get("DBInstanceArn", ""))
        writer = _instance_endpoint(instance, "instance endpoint")
        if writer is None:
            raise RdsError(
                f"RDS lists no endpoint for the DB instance {describe(arn)} (is it still being created?); "
                "retry the rotation once the instance is available"
            )
        endpoints = [writer]
        # Read replicas in this region are named by identifier; replicas in other regions by ARN, and
        # this region's API does not describe them: a secret naming one is refused.
        replicas = [
            name
            for name in instance.get("ReadReplicaDBInstanceIdentifiers", [])
            if isinstance(name, str) and name and not name.startswith("arn:")
        ]
        if replicas:
            for replica in self._instances(Filters=[{"Name": "db-instance-id", "Values": replicas}]):
                endpoint = _instance_endpoint(replica, "read replica")
                if endpoint is not None:
                    endpoints.append(endpoint)
        return RdsDatabase(
            arn=arn,
            identifier=str(instance.get("DBInstanceIdentifier", "")),
            kind="instance",
            engine=str(instance.get("Engine", "")),
            writer=writer,
            endpoints=tuple(endpoints),
        )

    # -- the calls ---------------------------------------------------------------------------------

    def _clusters(self, **kwargs: Any) -> list[Mapping[str, Any]]:
        return list(self._pages("DescribeDBClusters", self.client.describe_db_clusters, "DBClusters", kwargs))

    def _instances(self, **kwargs: Any) -> list[Mapping[str, Any]]:
        return list(self._pages("DescribeDBInstances", self.client.describe_db_instances, "DBInstances", kwargs))

    def _pages(
        self, operation: str, method: Callable[..., Mapping[str, Any]], key: str, kwargs: dict[str, Any]
    ) -> Iterator[Mapping[str, Any]]:
        from botocore.exceptions import BotoCoreError, ClientError

        marker: str | None = None
        for _page in range(_MAX_PAGES):
            arguments = dict(kwargs)
            if "DBInstanceIdentifier" not in kwargs and "DBClusterIdentifier" not in kwargs:
                arguments["MaxRecords"] = _PAGE_SIZE
            if marker:
                arguments["Marker"] = marker
            try:
                response = method(**arguments)
            except ClientError as error:
                code = str(error.response.get("Error", {}).get("Code", "Unknown"))
                if code in ("DBInstanceNotFound", "DBInstanceNotFoundFault", "DBClusterNotFoundFault"):
                    return
                _raise_service_error(operation, code, str(error.response.get("Error", {}).get("Message", "")))
            except BotoCoreError as error:
                raise RdsError(
                    f"RDS {operation} could not be sent ({type(error).__name__}: {redact(str(error))}); if the "
                    "function runs in a VPC, give it an RDS interface VPC endpoint (com.amazonaws.<region>.rds) or "
                    "a NAT route",
                    error_code=type(error).__name__,
                ) from None
            items = response.get(key, [])
            yield from (item for item in items if isinstance(item, Mapping))
            marker = response.get("Marker")
            if not marker:
                return
        raise RdsError(f"RDS {operation} returned more than {_MAX_PAGES} pages; refusing to read further")


def _dns(host: str) -> str:
    return host.strip().rstrip(".").lower()


def _port(value: object, default: int = 0) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else default


def _writer_of_cluster(cluster: Mapping[str, Any]) -> RdsEndpoint:
    return RdsEndpoint(str(cluster.get("Endpoint") or ""), _port(cluster.get("Port")), "cluster (writer) endpoint")


def _instance_endpoint(instance: Mapping[str, Any], kind: str) -> RdsEndpoint | None:
    endpoint = instance.get("Endpoint")
    if not isinstance(endpoint, Mapping):
        return None
    address = endpoint.get("Address")
    if not isinstance(address, str) or not address:
        return None
    return RdsEndpoint(address, _port(endpoint.get("Port"), _port(instance.get("DbInstancePort"))), kind)


def _not_found(kind: str, arn: str) -> NoReturn:
    raise RdsError(
        f"RDS has no {kind} {describe(arn)}, which the master secret's RDS tag names (deleted, or in another "
        'account or region?); point "masterarn" at the master secret of the database being rotated',
        error_code="NotFound",
    )


def _raise_service_error(operation: str, code: str, service_message: str) -> NoReturn:
    hint = _HINTS.get(code, "see the RDS error code")
    raise RdsError(f"RDS {operation} failed with {code} ({redact(service_message)}); {hint}", error_code=code)
