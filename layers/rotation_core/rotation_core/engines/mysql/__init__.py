"""MySQL, Aurora MySQL and MariaDB: the engine unit (statements, grant copying, PyMySQL I/O).

:mod:`.statements` builds every statement as data (pure), :mod:`.grants` reads ``SHOW GRANTS`` into data
and rebuilds grants from it, :mod:`.engine` talks to the server.
"""

from __future__ import annotations

from rotation_core.registry import EngineSpec, SettingSpec
from rotation_core.settings import Strategy

ENGINE = EngineSpec(
    name="mysql",
    display_name="MySQL/MariaDB",
    implementation="rotation_core.engines.mysql.engine:MySQLEngine",
    secret_engines=frozenset({"mysql", "aurora-mysql", "mariadb"}),
    default_port=3306,
    strategies=(Strategy.SINGLE_USER, Strategy.ALTERNATING_USERS, Strategy.DUAL_PASSWORD),
    driver="PyMySQL",
    default_exclude_characters="/@\"'\\",
    template_name="MySql",
    settings=(
        SettingSpec(
            "USERNAME_CHARACTER_LIMIT",
            "for alternating MySQL users (32 for MySQL 5.7+/MariaDB, 16 for MySQL 5.6)",
            "32",
            (1, 128),
        ),
    ),
)
