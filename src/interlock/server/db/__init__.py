"""Storage: SQLAlchemy engine and sessions, Alembic migrations."""
