"""Alembic environment for the gallery: always run programmatically by ``studio.gallery.db``
with an open connection in ``config.attributes["connection"]`` (no alembic.ini, no URL)."""

from alembic import context

from studio.gallery.schema import Base

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("run gallery migrations through studio.gallery.db.migrate(), which passes a connection")

context.configure(connection=connection, target_metadata=Base.metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
