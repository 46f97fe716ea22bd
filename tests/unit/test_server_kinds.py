"""The server-kind declarations, their selection, the root-filesystem bookkeeping and the verified table."""

from __future__ import annotations

from pathlib import Path

import pytest

from rotation_local import server_kinds, verified
from rotation_local.rootfs import Chroot, RootFS, upstream_version
from rotation_local.server_kinds import check_root_versions, kind_named, root_of, select, suite_packages


def test_select_names_and_patterns_in_declaration_order() -> None:
    # Declaration order: the local targets by engine name, each target's kinds as it lists them.
    assert [kind.name for kind in select("postgres-1*,mysql-9.7")] == [
        "mysql-9.7", "postgres-15", "postgres-17", "postgres-18",
    ]  # fmt: skip
    assert [kind.name for kind in select("mariadb-*")] == ["mariadb-10.11", "mariadb-11.8"]
    assert select(None) == list(server_kinds.kinds())
    assert select(" all ") == list(server_kinds.kinds())


def test_select_unknown_name_is_an_error_listing_the_known_ones() -> None:
    with pytest.raises(ValueError, match=r"postgres-16.*known: mariadb-10.11, .*postgres-15"):
        select("postgres-16")


def test_kinds_of_one_suite_share_one_root_with_all_their_packages() -> None:
    assert suite_packages("trixie") == ("mariadb-server-core", "mariadb-client-core", "postgresql-17", "valkey-server")
    assert suite_packages("sid") == ("mysql-server-core", "postgresql-18")
    assert root_of(kind_named("postgres-17")) == root_of(kind_named("mariadb-11.8"))
    assert root_of(kind_named("postgres-15")) is None


@pytest.mark.parametrize(
    ("kind", "reported", "matches"),
    [
        ("postgres-17", "17.12 (Debian 17.12-0+deb13u1)", True),
        ("postgres-17", "170.1", False),
        ("postgres-18", "17.12", False),
        ("mariadb-11.8", "11.8.9-MariaDB-0+deb13u1 from Debian-log", True),
        ("mariadb-11.8", "11.80.1-MariaDB", False),
        ("mysql-9.7", "9.7.4-2", True),
        ("mysql-9.7", "9.8.0", False),
    ],
)
def test_kind_accepts_only_its_own_version(kind: str, reported: str, matches: bool) -> None:
    assert kind_named(kind).matches_version(reported) is matches


def test_root_with_another_version_than_its_kinds_name_is_reported() -> None:
    root = RootFS("sid", suite_packages("sid"))
    good = {"postgresql-18": "18.6-3", "mysql-server-core": "9.7.4-2"}
    assert check_root_versions(root, good) == []
    problems = check_root_versions(root, {**good, "mysql-server-core": "9.8.0-1"})
    assert problems == ["mysql-9.7: mysql-server-core is 9.8.0-1, not 9.7"]
    assert upstream_version("1:11.8.9+ds-0+deb13u1") == "11.8.9"


def test_root_rebuilt_when_its_package_list_changes(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("ROTATION_SERVERS_CACHE", str(tmp_path))
    one, other = RootFS("sid", ("postgresql-18",)), RootFS("sid", ("postgresql-18", "mysql-server-core"))
    assert one.build_name != other.build_name
    assert one.link == tmp_path / "sid"
    assert not one.is_current()


def test_chroot_maps_paths_and_prefixes_commands(tmp_path: Path) -> None:
    chroot = Chroot(tmp_path)
    assert chroot.inside(tmp_path / "tmp" / "x" / "data") == "/tmp/x/data"
    assert chroot.host("/tmp/x/general.log") == tmp_path / "tmp" / "x" / "general.log"
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc" / "passwd").write_text(
        "root:x:0:0::/root:/bin/sh\npostgres:x:101:103::/var/lib/postgresql:/bin/sh\n"
    )
    assert chroot.user_ids("postgres") == (101, 103)
    assert chroot.user_ids("mysql") is None
    assert Chroot(None).inside(tmp_path / "a") == str(tmp_path / "a")


def test_verified_table_renders_counts_failures_and_unrun_claims() -> None:
    record = {
        "run": {"finished_at": "2026-01-01 00:00 UTC", "python": "3.11.2", "passed": 5, "failed": 1, "skipped": 0},
        "kinds": {
            "postgres-17": {"version": "17.12", "tests": {"passed": 3, "failed": 0},
                            "claims": {"single_user": {"passed": 2, "failed": 0}}},
            "mysql-9.7": {"version": "9.7.4-2", "tests": {"passed": 2, "failed": 1},
                          "claims": {"alternating_users": {"passed": 1, "failed": 1}}},
        },
    }  # fmt: skip
    table = verified.render_table(record)
    rows = [line for line in table.splitlines() if line.startswith("| `")]
    # In declaration order (the local targets by engine name).
    assert rows[0].startswith("| `mysql-9.7` | 9.7.4-2 | not run | ✗ 1 of 2 failed |")
    assert rows[1].startswith("| `postgres-17` | 17.12 | ✓ 2 | not run |")
    assert rows[0].endswith("| ✗ 1 of 3 failed |")


def test_verified_docs_blocks_written_from_record_and_partial_run_detected(tmp_path: Path) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    for name in ("verified.md", "security.md"):
        (docs / name).write_text("intro\n<!-- verified-table:start -->\n<!-- verified-table:end -->\n"
                                 "<!-- suite-figures:start -->\nold\n<!-- suite-figures:end -->\noutro\n")  # fmt: skip
    record = {"run": {"passed": 1, "failed": 0, "skipped": 0}, "kinds": {"postgres-15": {"version": "15.1"}}}

    verified.write_docs(record, docs)

    assert verified.stale_blocks(docs) == []
    assert "| `postgres-15` | 15.1 |" in (docs / "verified.md").read_text()
    assert (docs / "security.md").read_text().endswith("<!-- suite-figures:end -->\noutro\n")
    assert "postgres-17" in verified.missing_kinds(record)
    (docs / "verified.md").write_text((docs / "verified.md").read_text().replace("15.1", "15.2"))
    assert verified.stale_blocks(docs) == ["docs/verified.md (verified-table)"]
