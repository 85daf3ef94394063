"""Alembic migrations of the operational store, run by `tierwise.store.db.upgrade`."""
