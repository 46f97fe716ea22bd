"""MySQL, Aurora MySQL and MariaDB password rotation (single user or alternating users, by ROTATION_STRATEGY)."""

from __future__ import annotations

from rotation_core.engines.mysql import MySQLEngine
from rotation_core.handler import database_handler

lambda_handler = database_handler(MySQLEngine, default_exclude_characters=MySQLEngine.default_exclude_characters)
