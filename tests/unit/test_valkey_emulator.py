"""The ElastiCache and MemoryDB emulator held to the services' published definitions (botocore's service-2.json).

Every operation the Valkey function calls goes through boto3 to moto in-process with the emulator's patches; each
answer is checked against the operation's output shape (members, types, enums) and, for ElastiCache's XML, the raw
elements too (botocore's parser would silently drop an element the definition does not name). Errors carry the
codes the definitions give. A placed user's change reaches the (fake) server only as password digests, when the
service reports the user active again.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.model import ListShape, Shape, StructureShape
from botocore.session import get_session
from moto import mock_aws

from rotation_local import emulator, valkey_emulator
from rotation_local.valkey_emulator import digest

PASSWORDS = ["First-Password-000000001", "Second-Password-00000002"]


class FakeServer:
    def __init__(self) -> None:
        self.applied: list[tuple[str, list[str]]] = []

    def set_user_passwords(self, username: str, digests: list[str]) -> None:
        self.applied.append((username, digests))


def conforms(shape: Shape, value: Any, path: str = "") -> list[str]:
    """Where ``value`` departs from ``shape`` (unknown members, wrong types, values outside an enum)."""
    problems: list[str] = []
    if isinstance(shape, StructureShape):
        if not isinstance(value, dict):
            return [f"{path}: not a structure"]
        for key, item in value.items():
            if key == "ResponseMetadata" and not path:
                continue
            if key not in shape.members:
                problems.append(f"{path}.{key}: not a member of {shape.name}")
            else:
                problems += conforms(shape.members[key], item, f"{path}.{key}")
    elif isinstance(shape, ListShape):
        if not isinstance(value, list):
            return [f"{path}: not a list"]
        for index, item in enumerate(value):
            problems += conforms(shape.member, item, f"{path}[{index}]")
    elif shape.type_name == "string":
        if not isinstance(value, str):
            problems.append(f"{path}: not a string")
        elif shape.enum and value not in shape.enum:
            problems.append(f"{path}: {value!r} not in {shape.enum}")
    elif shape.type_name in ("integer", "long") and (not isinstance(value, int) or isinstance(value, bool)):
        problems.append(f"{path}: not an integer")
    elif shape.type_name == "boolean" and not isinstance(value, bool):
        problems.append(f"{path}: not a boolean")
    return problems


def output_shape(service: str, operation: str) -> Shape:
    shape = get_session().get_service_model(service).operation_model(operation).output_shape
    assert shape is not None
    return shape


@pytest.fixture
def clients(aws_env: None) -> Iterator[tuple[Any, Any, list[bytes]]]:
    """ElastiCache and MemoryDB clients on moto in-process, and the raw bodies of their answers."""
    raw: list[bytes] = []
    with mock_aws():
        elasticache = boto3.client("elasticache", region_name=emulator.DEFAULT_REGION)
        memorydb = boto3.client("memorydb", region_name=emulator.DEFAULT_REGION)
        elasticache.meta.events.register("after-call.elasticache", lambda http_response, **_: raw.append(
            http_response.content))  # fmt: skip
        valkey_emulator.apply_user_patches()
        yield elasticache, memorydb, raw


def xml_members(body: bytes, element: str) -> set[str]:
    """The child element names of ``<element>`` in an XML answer."""
    match = re.search(rb"<%s>(.*?)</%s>" % (element.encode(), element.encode()), body, re.S)
    assert match is not None, body[:300]
    return {name.decode() for name in re.findall(rb"<(\w+)>", match.group(1))}


def test_valkey_emulator_elasticache_modify_user_answers_user_shape_and_applies_digests_when_active(
    clients: tuple[Any, Any, list[bytes]],
) -> None:
    elasticache, _memorydb, raw = clients
    user = elasticache.create_user(UserId="rotation-app", UserName="app", Engine="redis", Passwords=[PASSWORDS[0]],
                                   AccessString="on ~app:* +get")  # fmt: skip
    server = FakeServer()
    valkey_emulator.place(user["ARN"], server, "app", modifying_describes=1)

    answer = elasticache.modify_user(UserId="rotation-app", Passwords=PASSWORDS)

    assert conforms(output_shape("elasticache", "ModifyUser"), answer) == []
    user_members = set(get_session().get_service_model("elasticache").shape_for("User").members)
    assert xml_members(raw[-1], "ModifyUserResult") <= user_members | {"PasswordCount", "Type"}
    assert (answer["Status"], answer["Authentication"]) == ("modifying", {"Type": "password", "PasswordCount": 2})
    first = elasticache.describe_users(UserId="rotation-app")
    assert conforms(output_shape("elasticache", "DescribeUsers"), first) == []
    assert first["Users"][0]["Status"] == "modifying"
    assert server.applied == []
    assert elasticache.describe_users(UserId="rotation-app")["Users"][0]["Status"] == "active"
    assert server.applied == [("app", [digest(p) for p in PASSWORDS])]


def test_valkey_emulator_elasticache_errors_carry_the_definitions_codes(clients: tuple[Any, Any, list[bytes]]) -> None:
    elasticache, _memorydb, _raw = clients
    user = elasticache.create_user(UserId="rotation-app", UserName="app", Engine="redis", Passwords=[PASSWORDS[0]],
                                   AccessString="on ~app:* +get")  # fmt: skip
    valkey_emulator.place(user["ARN"], FakeServer(), "app", modifying_describes=5)
    model = get_session().get_service_model("elasticache")
    codes = {
        name: model.shape_for(name).metadata["error"]["code"] for name in ("InvalidUserStateFault", "UserNotFoundFault")
    }

    elasticache.modify_user(UserId="rotation-app", Passwords=PASSWORDS)
    with pytest.raises(elasticache.exceptions.ClientError) as busy:
        elasticache.modify_user(UserId="rotation-app", Passwords=PASSWORDS)
    with pytest.raises(elasticache.exceptions.ClientError) as missing:
        elasticache.modify_user(UserId="rotation-nobody", Passwords=PASSWORDS)
    elasticache.create_user(UserId="rotation-two", UserName="two", Engine="redis", Passwords=[PASSWORDS[0]],
                            AccessString="on ~two:* +get")  # fmt: skip
    with pytest.raises(elasticache.exceptions.ClientError) as three:
        elasticache.modify_user(UserId="rotation-two", Passwords=[*PASSWORDS, "Third-Password-000000003"])

    assert busy.value.response["Error"]["Code"] == codes["InvalidUserStateFault"]
    assert missing.value.response["Error"]["Code"] == codes["UserNotFoundFault"]
    assert three.value.response["Error"]["Code"] == "InvalidParameterValue"  # "You are allowed up to two."


def test_valkey_emulator_elasticache_tags_answer_tag_list_shape(clients: tuple[Any, Any, list[bytes]]) -> None:
    elasticache, _memorydb, _raw = clients
    user = elasticache.create_user(UserId="rotation-app", UserName="app", Engine="valkey", Passwords=[PASSWORDS[0]],
                                   AccessString="on ~app:* +get")  # fmt: skip
    valkey_emulator.tag_user(user["ARN"], "secrets-rotation:secret-arn", "arn:aws:secretsmanager:x")

    answer = elasticache.list_tags_for_resource(ResourceName=user["ARN"])

    assert conforms(output_shape("elasticache", "ListTagsForResource"), answer) == []
    assert {"Key": "secrets-rotation:secret-arn", "Value": "arn:aws:secretsmanager:x"} in answer["TagList"]


def test_valkey_emulator_memorydb_update_user_shape_state_and_password_limits(
    clients: tuple[Any, Any, list[bytes]],
) -> None:
    _elasticache, memorydb, _raw = clients
    user = memorydb.create_user(UserName="app", AuthenticationMode={"Type": "password", "Passwords": [PASSWORDS[0]]},
                                AccessString="on ~app:* +get")["User"]  # fmt: skip
    server = FakeServer()
    valkey_emulator.place(user["ARN"], server, "app")
    valkey_emulator.tag_user(user["ARN"], "secrets-rotation:secret-arn", "arn:aws:secretsmanager:x")

    answer = memorydb.update_user(UserName="app", AuthenticationMode={"Type": "password", "Passwords": PASSWORDS})
    with pytest.raises(memorydb.exceptions.ClientError) as busy:
        memorydb.update_user(UserName="app", AuthenticationMode={"Type": "password", "Passwords": PASSWORDS})
    described = memorydb.describe_users(UserName="app")
    with pytest.raises(memorydb.exceptions.ClientError) as short:
        memorydb.update_user(UserName="app", AuthenticationMode={"Type": "password", "Passwords": ["short"]})

    assert conforms(output_shape("memorydb", "UpdateUser"), answer) == []
    assert conforms(output_shape("memorydb", "DescribeUsers"), described) == []
    assert conforms(output_shape("memorydb", "ListTags"), memorydb.list_tags(ResourceArn=user["ARN"])) == []
    assert answer["User"]["Status"] == "modifying"
    assert busy.value.response["Error"]["Code"] == "InvalidUserStateFault"  # the definition's shape name
    assert described["Users"][0]["Status"] == "active"
    assert server.applied == [("app", [digest(p) for p in PASSWORDS])]
    assert short.value.response["Error"]["Code"] == "InvalidParameterValueException"
