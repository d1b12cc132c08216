"""The schema's revisions: an Alembic environment shipped inside the package.

Run them with ``gateway db upgrade`` or :mod:`gateway.storage.schema`, never with the
``alembic`` command against a database: ``env.py`` only runs on a connection the gateway
hands it, inside the gateway's own transaction.

Adding a revision (when ``gateway/storage/tables.py`` changes):

1. ``.venv/bin/alembic -c gateway/storage/migrations/alembic.ini revision --rev-id 0002
   -m "what changes"`` writes ``versions/0002_what_changes.py`` from ``script.py.mako``
   (revision ids are four digits, in order).
2. Write its ``upgrade()`` with ``op`` (on SQLite every ALTER runs in batch mode: write
   ``with op.batch_alter_table("readings") as batch: batch.add_column(...)``), in the
   underlying column types, not the TypeDecorators of ``tables.py`` (see ``0001``).
3. ``tests/integration/test_migrations.py`` fails until the revisions make exactly what
   ``tables.py`` describes, and prints the differences left.
"""
