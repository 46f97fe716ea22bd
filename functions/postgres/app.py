"""PostgreSQL password rotation (single user or alternating users, by ROTATION_STRATEGY)."""

from __future__ import annotations

from rotation_core.handler import database_handler

lambda_handler = database_handler("postgres")
