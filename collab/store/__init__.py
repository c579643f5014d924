"""Storage in SQLite: schema, migrations and the records built on it."""

from collab.store.database import Database, StoreError

__all__ = ["Database", "StoreError"]
