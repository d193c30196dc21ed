from __future__ import annotations

from alembic import context

from interlock.server.db.migrate import migration_connection
from interlock.server.db.models import Base

engine = context.config.attributes["engine"]

with migration_connection(engine) as connection:
    # The connection is already in its (locked) transaction, so Alembic runs every step in it
    # and migration_connection commits once at the end: all or nothing.
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        render_as_batch=True,  # SQLite alters tables by copying them
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()
