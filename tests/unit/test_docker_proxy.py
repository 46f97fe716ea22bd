"""The Docker socket local-env gives sam local invoke: how a container create request is rewritten.

The requests are the ones SAM CLI 1.170.0 sends (docker-py's container create body: Entrypoint,
PortBindings for 8080/tcp). tests/integration/test_docker_proxy.py runs the proxy on a unix socket.
"""

from __future__ import annotations

from typing import Any

import pytest

from rotation_local.docker_proxy import LABEL, ProxyRefusedError, host_network_config

# What SAM asks for (docker-py's body of POST /containers/create), trimmed to the parts that matter.
SAM_CREATE = {
    "Image": "samcli/lambda-python:3.13-x86_64-0123456789abcdef",
    "Entrypoint": ["/var/rapid/aws-lambda-rie", "--log-level", "error"],
    "Cmd": [],
    "WorkingDir": "/var/task",
    "Env": ["AWS_LAMBDA_FUNCTION_HANDLER=app.lambda_handler"],
    "ExposedPorts": {"8080/tcp": {}},
    "Labels": {"sam.cli.container.type": "lambda"},
    "HostConfig": {
        "PortBindings": {"8080/tcp": [{"HostIp": "127.0.0.1", "HostPort": "7786"}]},
        "Binds": ["/work/.aws-sam/build/ApiKeyFunction:/var/task:ro,delegated"],
        "Memory": 268435456,
    },
}


def test_host_network_config_gives_host_network_and_emulator_loopback_ports() -> None:
    config = host_network_config(SAM_CREATE, runtime_api_port=40001, label_value="run-1")

    assert config["HostConfig"]["NetworkMode"] == "host"
    assert "PortBindings" not in config["HostConfig"]
    assert "ExposedPorts" not in config
    assert config["Entrypoint"] == [
        "/var/rapid/aws-lambda-rie",
        "--runtime-interface-emulator-address", "127.0.0.1:7786",
        "--runtime-api-address", "127.0.0.1:40001",
        "--log-level", "error",
    ]  # fmt: skip
    assert config["Labels"] == {"sam.cli.container.type": "lambda", LABEL: "run-1"}
    # everything else as SAM asked
    assert config["HostConfig"]["Binds"] == SAM_CREATE["HostConfig"]["Binds"]  # type: ignore[index]
    assert config["Env"] == SAM_CREATE["Env"]
    assert SAM_CREATE["HostConfig"]["PortBindings"]  # type: ignore[index]  # the input is left as it was


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"Entrypoint": ["/bin/sh", "-c", "id"]}, "no emulator in its entry point"),
        ({"Entrypoint": None}, "no emulator in its entry point"),
        ({"HostConfig": {"PortBindings": {}}}, "no host port for the emulator"),
        ({"HostConfig": {"PortBindings": {"8080/tcp": [{"HostIp": "", "HostPort": ""}]}}}, "no host port"),
    ],
)
def test_host_network_config_refuses_what_is_not_a_sam_lambda_container(change: dict[str, Any], reason: str) -> None:
    with pytest.raises(ProxyRefusedError, match=reason):
        host_network_config({**SAM_CREATE, **change}, runtime_api_port=40001)
