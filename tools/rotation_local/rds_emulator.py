"""moto's RDS, made to name local servers as the endpoints of its DB instances and clusters.

moto invents endpoint addresses (``<id>.aaaaaaaaaa.<region>.rds.amazonaws.com``) and has no custom
endpoints. :func:`place` makes ``DescribeDBInstances`` / ``DescribeDBClusters`` answer with addresses
chosen by a test instead (e.g. writer ``127.0.0.1`` and reader ``localhost`` of one local server), by
overriding moto's model properties per resource ARN; everything else — identifiers, ARNs, engines,
members, read replicas, the master secrets RDS manages (``ManageMasterUserPassword``, with their
``aws:rds:`` tags) — is moto's own. Works for moto in-process (``mock_aws``) and for
:class:`rotation_local.emulator.EmulatorServer`, whose requests this process serves.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from rotation_local.emulator import DEFAULT_ACCOUNT, DEFAULT_REGION


@dataclass
class _Placement:
    address: str | None = None  # instance endpoint, or cluster (writer) endpoint
    reader: str | None = None  # cluster reader endpoint
    custom: tuple[str, ...] = field(default_factory=tuple)  # cluster custom endpoints


_placements: dict[str, _Placement] = {}


def rds_backend(account_id: str = DEFAULT_ACCOUNT, region: str = DEFAULT_REGION) -> Any:
    from moto.backends import get_backend

    return get_backend("rds")[account_id][region]


@functools.cache
def apply_endpoint_overrides() -> None:
    """Make moto's DB instances and clusters report the addresses :func:`place` gave them. Runs once."""
    from moto.rds.models import DBCluster, DBInstance

    instance_address = DBInstance.address
    cluster_endpoint = DBCluster.endpoint
    cluster_reader = DBCluster.reader_endpoint

    def address(self: Any) -> str:
        placed = _placements.get(self.arn)
        return placed.address if placed and placed.address else str(instance_address.fget(self))  # type: ignore[attr-defined]

    def endpoint(self: Any) -> str:
        placed = _placements.get(self.arn)
        return placed.address if placed and placed.address else str(cluster_endpoint.fget(self))  # type: ignore[attr-defined]

    def reader_endpoint(self: Any) -> str:
        placed = _placements.get(self.arn)
        return placed.reader if placed and placed.reader else str(cluster_reader.fget(self))  # type: ignore[attr-defined]

    def custom_endpoints(self: Any) -> list[str]:
        placed = _placements.get(self.arn)
        return list(placed.custom) if placed else []

    DBInstance.address = property(address)  # type: ignore[method-assign,assignment]
    DBCluster.endpoint = property(endpoint)  # type: ignore[method-assign,assignment]
    DBCluster.reader_endpoint = property(reader_endpoint)  # type: ignore[method-assign,assignment]
    DBCluster.custom_endpoints = property(custom_endpoints)  # type: ignore[attr-defined]


def place(
    arn: str,
    *,
    address: str | None = None,
    reader: str | None = None,
    custom: Iterable[str] = (),
    port: int | None = None,
    account_id: str = DEFAULT_ACCOUNT,
    region: str = DEFAULT_REGION,
) -> None:
    """Give the DB instance or cluster ``arn`` these endpoint addresses (and port) in RDS's answers."""
    apply_endpoint_overrides()
    _placements[arn] = _Placement(address=address, reader=reader, custom=tuple(custom))
    if port is not None:
        _resource(arn, account_id, region).port = port


def reset(account_id: str = DEFAULT_ACCOUNT, region: str = DEFAULT_REGION) -> None:
    """Forget every DB instance and cluster (and their placements): each test starts with an empty region.

    The master secrets RDS created for them stay in Secrets Manager, as they would after a deletion.
    """
    rds_backend(account_id, region).reset()
    _placements.clear()


def _resource(arn: str, account_id: str, region: str) -> Any:
    backend = rds_backend(account_id, region)
    for resource in [*backend.databases.values(), *backend.clusters.values()]:
        if resource.arn == arn:
            return resource
    raise KeyError(f"no DB instance or cluster {arn} in the emulator")
