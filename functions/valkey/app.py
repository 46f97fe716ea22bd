"""Valkey and Redis OSS user passwords (ElastiCache, MemoryDB or self-managed), two passwords valid at once."""

from __future__ import annotations

from rotation_core.handler import database_handler

lambda_handler = database_handler("valkey")
