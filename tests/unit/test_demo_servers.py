"""`make demo` installs only what the demo starts: the host's PostgreSQL and MariaDB, no private root filesystem."""

from __future__ import annotations

import pytest

from rotation_local import server_kinds
from rotation_local.__main__ import main
from rotation_local.demo import demo_server_kinds
from rotation_local.targets import database_targets


def test_demo_server_kinds_one_per_target_from_the_host() -> None:
    kinds = demo_server_kinds()

    assert [kind.family for kind in kinds] == list(database_targets())
    assert all(kind.from_host for kind in kinds)
    assert server_kinds.roots(kinds) == []


def test_roots_needed_demo_none_all_servers_every_suite(capfd: pytest.CaptureFixture[str]) -> None:
    assert main(["roots", "needed", "--servers", "demo"]) == 0
    assert capfd.readouterr().out == ""

    assert main(["roots", "needed", "--servers", "all"]) == 0
    suites = capfd.readouterr().out.split()
    assert suites == [root.suite for root in server_kinds.roots()]
    assert suites  # the newer servers do need roots: the demo's empty answer is not the command's only one
