"""Object storage for the embedded API server: an in-memory and a SQLite implementation."""

from vkcompose.apiserver.storage.base import Storage, Stored
from vkcompose.apiserver.storage.memory import MemoryStorage
from vkcompose.apiserver.storage.sqlite import SQLiteStorage

__all__ = ["MemoryStorage", "SQLiteStorage", "Storage", "Stored", "open_storage"]


def open_storage(kind: str, path: str | None = None) -> Storage:
    """Open ``"memory"`` storage or ``"sqlite"`` storage at ``path`` (a database file)."""
    if kind == "memory":
        return MemoryStorage()
    if kind == "sqlite":
        if path is None:
            raise ValueError("sqlite storage needs a database path")
        return SQLiteStorage(path)
    raise ValueError(f"unknown storage {kind!r} (memory, sqlite)")
