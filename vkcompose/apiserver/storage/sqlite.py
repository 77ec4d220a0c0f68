"""SQLite storage: a write-through copy of :class:`MemoryStorage` in one database file (WAL)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from vkcompose.apiserver.storage.base import Stored
from vkcompose.apiserver.storage.memory import MemoryStorage

__all__ = ["SQLiteStorage"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS objects (
    resource TEXT NOT NULL,
    namespace TEXT NOT NULL,
    name TEXT NOT NULL,
    rv INTEGER NOT NULL,
    data BLOB NOT NULL,
    PRIMARY KEY (resource, namespace, name)
);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
"""


class SQLiteStorage(MemoryStorage):
    """Every write is committed to SQLite before it is visible; a restart reloads all objects
    and continues the resourceVersion sequence.

    Reads are served from memory. The database runs in WAL mode with ``synchronous=NORMAL``:
    a committed write survives a crash of the process (not necessarily a power loss).
    """

    def __init__(self, path: str | Path) -> None:
        super().__init__()
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(_SCHEMA)
        # puts record their RV in their row only; deletes record theirs in ``meta``
        row = self._db.execute(
            "SELECT max(coalesce((SELECT value FROM meta WHERE key='rv'), 0),"
            " coalesce((SELECT max(rv) FROM objects), 0))"
        ).fetchone()
        self._rv = int(row[0]) if row else 0
        for resource, namespace, name, rv, data in self._db.execute(
            "SELECT resource, namespace, name, rv, data FROM objects"
        ):
            self._load(resource, namespace, name, bytes(data), int(rv))

    def _persist_put(self, resource: str, namespace: str, name: str, stored: Stored) -> None:
        # one statement, its own transaction: the row carries the write's RV
        try:
            self._db.execute(
                "INSERT OR REPLACE INTO objects VALUES (?, ?, ?, ?, ?)",
                (resource, namespace, name, stored.rv, stored.raw),
            )
        except BaseException:
            self._rv -= 1
            raise

    def _persist_delete(self, resource: str, namespace: str, name: str, rv: int) -> None:
        db = self._db
        db.execute("BEGIN")
        try:
            db.execute(
                "DELETE FROM objects WHERE resource=? AND namespace=? AND name=?",
                (resource, namespace, name),
            )
            db.execute("INSERT OR REPLACE INTO meta VALUES ('rv', ?)", (rv,))
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            self._rv -= 1
            raise

    def close(self) -> None:
        """Close the database."""
        self._db.close()
