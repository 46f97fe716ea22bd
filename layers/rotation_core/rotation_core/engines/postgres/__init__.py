"""PostgreSQL and Aurora PostgreSQL: the engine unit (statements as data, psycopg2 I/O).

:mod:`.statements` describes every statement (pure), :mod:`.engine` composes and sends them.
"""

from __future__ import annotations

from rotation_core.registry import EngineSpec
from rotation_core.settings import Strategy

ENGINE = EngineSpec(
    name="postgres",
    display_name="PostgreSQL",
    implementation="rotation_core.engines.postgres.engine:PostgresEngine",
    secret_engines=frozenset({"postgres", "aurora-postgresql"}),
    default_port=5432,
    strategies=(Strategy.SINGLE_USER, Strategy.ALTERNATING_USERS),
    driver="psycopg2-binary",
    default_exclude_characters=":/@\"'\\",
    template_name="Postgres",
)
