"""Persistence: SQLAlchemy Core tables on SQLite (default) or PostgreSQL (asyncpg)."""

from gateway.storage.database import Database, UnitOfWork

__all__ = ["Database", "UnitOfWork"]
