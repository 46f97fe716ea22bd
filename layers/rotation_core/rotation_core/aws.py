"""AWS clients as the functions use them: bounded timeouts and retries, made on first use.

A function that cannot reach an AWS endpoint (a VPC without the endpoint or a NAT) fails within
seconds with a message naming it, instead of hanging until the Lambda timeout.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, Generic, TypeVar

CONNECT_TIMEOUT_SECONDS = 5
READ_TIMEOUT_SECONDS = 15
MAX_ATTEMPTS = 3

ClientT = TypeVar("ClientT")


def bounded_client(service: str, endpoint_url: str | None, region: str | None = None) -> Any:
    """A boto3 client of ``service`` with bounded timeouts (boto3 also honours ``AWS_ENDPOINT_URL_<SERVICE>``);
    ``region`` overrides the function's own (None: the runtime's)."""
    import boto3
    from botocore.config import Config

    config = Config(
        connect_timeout=CONNECT_TIMEOUT_SECONDS,
        read_timeout=READ_TIMEOUT_SECONDS,
        retries={"mode": "standard", "max_attempts": MAX_ATTEMPTS},
    )
    return boto3.client(service, endpoint_url=endpoint_url, config=config, region_name=region)  # type: ignore[call-overload]


class LazyClient(Generic[ClientT]):
    """The client given, or one made by ``factory(endpoint_url)`` the first time it is needed."""

    def __init__(
        self, client: ClientT | None, factory: Callable[[str | None], ClientT], endpoint_url: str | None
    ) -> None:
        self._client = client
        self._new_client = functools.partial(factory, endpoint_url)

    def get(self) -> ClientT:
        if self._client is None:
            self._client = self._new_client()
        return self._client


class ServiceAccess(Generic[ClientT]):
    """Access to one AWS service through a client: the one given, or one made on first use.

    ``client_factory(endpoint_url)`` makes it (tests inject their own); subclasses name their default.
    """

    default_client_factory: Callable[[str | None], Any]

    def __init__(
        self,
        client: ClientT | None = None,
        *,
        endpoint_url: str | None = None,
        client_factory: Callable[[str | None], ClientT] | None = None,
    ) -> None:
        factory = client_factory or type(self).default_client_factory
        self._client = LazyClient(client, factory, endpoint_url)

    @property
    def client(self) -> ClientT:
        """The client given, or one made by the factory on first use."""
        return self._client.get()
