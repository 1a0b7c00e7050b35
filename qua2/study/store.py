"""The study store: one SQLite database (WAL mode) with one durable row per configuration.

Why SQLite: no server, atomic transactions, safe for several worker processes on one machine,
and every row survives ``kill -9`` once committed. Life of a row::

    pending ──claim()──▶ running ──finish()──▶ done
                            │  └──fail()────▶ failed
                            └─(worker died)─▶ pending   (recover_abandoned)

A claim is one ``BEGIN IMMEDIATE`` transaction, so two workers never take the same row; a row
is ``done`` only after its metrics are committed, so nothing evaluated is lost and nothing is
evaluated twice. The schema version lives in ``PRAGMA user_version``.
"""

from __future__ import annotations

import json
import os
import socket
import sqlite3
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from qua2.errors import Qua2Error

SCHEMA_VERSION = 1
STATUSES = ("pending", "running", "done", "failed")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS configs (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,          -- QuantConfig.digest()
    kind TEXT NOT NULL,               -- random / uniform / sweep / search / baseline …
    config TEXT NOT NULL,             -- QuantConfig.to_dict() as JSON
    avg_bits REAL,
    status TEXT NOT NULL DEFAULT 'pending',
    worker TEXT,                      -- host:pid of the claiming process
    claimed_at REAL,
    finished_at REAL,
    metrics TEXT,                     -- JSON
    timings TEXT,                     -- JSON, seconds per phase
    error TEXT,
    tags TEXT                         -- JSON, free-form (e.g. the layer of a sweep row)
);
CREATE INDEX IF NOT EXISTS configs_status ON configs(status, seq);
"""


@dataclass(frozen=True)
class Row:
    """One configuration as stored."""

    seq: int
    id: str
    kind: str
    config: dict[str, Any]
    avg_bits: float | None
    status: str
    metrics: dict[str, float]
    timings: dict[str, float]
    error: str | None
    tags: dict[str, Any]


def _worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def _pid_alive(worker: str | None) -> bool:
    """Whether the process that claimed a row still runs (rows of other hosts count as alive)."""
    if not worker:
        return False
    host, _, pid = worker.rpartition(":")
    if host != socket.gethostname():
        return True
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except (PermissionError, ValueError):
        return True
    return True


class Store:
    """The configurations of one study, in ``<study>/study.sqlite``."""

    def __init__(self, path: str | Path, environment: dict[str, Any] | None = None) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if self.path.is_dir():
            raise Qua2Error(f"{self.path} is a directory, not the study's store; move it away.")
        try:
            # isolation_level=None: we issue BEGIN ourselves, so every transaction is explicit.
            self._db = sqlite3.connect(self.path, timeout=60, isolation_level=None)
            self._db.row_factory = sqlite3.Row
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._init_schema(environment or {})
            self._check_integrity()
        except sqlite3.DatabaseError as error:
            raise self.damaged(error) from None

    def damaged(self, error: sqlite3.DatabaseError) -> Qua2Error:
        """The one sentence for a store SQLite cannot read: it is never deleted or rebuilt."""
        return Qua2Error(
            f"the study store {self.path} is damaged ({error}); it holds the evaluated "
            "configurations, so qua2 leaves it untouched: restore it from a backup, or move it "
            "away and re-run to evaluate again.")

    def _check_integrity(self) -> None:
        """``PRAGMA quick_check``: damaged pages are found now, not in the middle of a stage."""
        result = self._db.execute("PRAGMA quick_check").fetchone()[0]
        if result != "ok":
            raise sqlite3.DatabaseError(str(result).splitlines()[0])

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ schema
    def _init_schema(self, environment: dict[str, Any]) -> None:
        with self._transaction():
            version = self._db.execute("PRAGMA user_version").fetchone()[0]
            has_tables = self._db.execute(
                "SELECT count(*) FROM sqlite_master WHERE name='configs'"
            ).fetchone()[0]
            if has_tables and version != SCHEMA_VERSION:
                raise Qua2Error(
                    f"{self.path} was written with store schema {version}, but this qua2 uses "
                    f"schema {SCHEMA_VERSION}; open it with a matching qua2 or start a new study."
                )
            if not has_tables:
                # One execute per statement: executescript() would commit our transaction early.
                for statement in filter(str.strip, _SCHEMA.split(";")):
                    self._db.execute(statement)
            self._db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
            if environment:
                self._db.execute(
                    "INSERT OR IGNORE INTO meta VALUES ('environment', ?)",
                    (json.dumps(environment),),
                )

    @contextmanager
    def _transaction(self) -> Iterator[None]:
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    def meta(self, key: str) -> Any:
        row = self._db.execute("SELECT value FROM meta WHERE key=?", (key,)).fetchone()
        return json.loads(row[0]) if row else None

    # ------------------------------------------------------------------ adding
    def add(self, entries: Iterable[tuple[str, str, dict[str, Any], float | None, dict]]) -> int:
        """Queue ``(id, kind, config, avg_bits, tags)`` rows; ids already present are skipped.

        Returns how many rows were new.
        """
        before = self.count()
        with self._transaction():
            self._db.executemany(
                "INSERT OR IGNORE INTO configs (id, kind, config, avg_bits, tags) "
                "VALUES (?, ?, ?, ?, ?)",
                [(i, k, json.dumps(c), b, json.dumps(t)) for i, k, c, b, t in entries],
            )
        return self.count() - before

    def has(self, config_id: str) -> bool:
        found = self._db.execute("SELECT 1 FROM configs WHERE id=?", (config_id,)).fetchone()
        return found is not None

    # ------------------------------------------------------------------ work queue
    def recover_abandoned(self) -> int:
        """Put rows claimed by processes that no longer exist back to ``pending``."""
        with self._transaction():
            running = self._db.execute(
                "SELECT id, worker FROM configs WHERE status='running'"
            ).fetchall()
            dead = [r["id"] for r in running if not _pid_alive(r["worker"])]
            self._db.executemany(
                "UPDATE configs SET status='pending', worker=NULL, claimed_at=NULL WHERE id=?",
                [(i,) for i in dead],
            )
        return len(dead)

    def release(self, config_id: str) -> None:
        """Put a row this process claimed back to ``pending`` (its evaluation was stopped)."""
        with self._transaction():
            self._db.execute("UPDATE configs SET status='pending', worker=NULL, claimed_at=NULL "
                             "WHERE id=? AND status='running'", (config_id,))

    def claim(self, kinds: Iterable[str] | None = None) -> Row | None:
        """Atomically take the oldest pending row (of ``kinds``) for this process."""
        kinds = tuple(kinds or ())
        where = f"AND kind IN ({','.join('?' * len(kinds))})" if kinds else ""
        with self._transaction():
            row = self._db.execute(
                f"SELECT * FROM configs WHERE status='pending' {where} ORDER BY seq LIMIT 1", kinds
            ).fetchone()
            if row is None:
                return None
            self._db.execute(
                "UPDATE configs SET status='running', worker=?, claimed_at=? WHERE id=?",
                (_worker_id(), time.time(), row["id"]),
            )
        return self.get(row["id"])

    def finish(self, config_id: str, metrics: dict[str, float], timings: dict[str, float],
               avg_bits: float | None = None) -> None:
        """Record a successful evaluation (one atomic commit)."""
        with self._transaction():
            self._db.execute(
                "UPDATE configs SET status='done', metrics=?, timings=?, finished_at=?, "
                "avg_bits=COALESCE(?, avg_bits), error=NULL WHERE id=?",
                (json.dumps(metrics), json.dumps(timings), time.time(), avg_bits, config_id),
            )

    def fail(self, config_id: str, reason: str, timings: dict[str, float] | None = None) -> None:
        """Record a failed evaluation with its reason; the study goes on."""
        with self._transaction():
            self._db.execute(
                "UPDATE configs SET status='failed', error=?, timings=?, finished_at=? WHERE id=?",
                (reason, json.dumps(timings or {}), time.time(), config_id),
            )

    def retag(self, config_id: str, tags: dict[str, Any]) -> None:
        """Replace a row's tags (e.g. a racing verdict), nothing else."""
        with self._transaction():
            self._db.execute("UPDATE configs SET tags=? WHERE id=?", (json.dumps(tags), config_id))

    def requeue(self, config_id: str, tags: dict[str, Any]) -> None:
        """Put a done row back to ``pending`` with new tags (racing: continue on more images);
        its metrics stay until the next evaluation replaces them."""
        with self._transaction():
            self._db.execute("UPDATE configs SET status='pending', tags=?, worker=NULL, "
                             "claimed_at=NULL WHERE id=?", (json.dumps(tags), config_id))

    # ------------------------------------------------------------------ reading
    def get(self, config_id: str) -> Row:
        row = self._db.execute("SELECT * FROM configs WHERE id=?", (config_id,)).fetchone()
        if row is None:
            raise Qua2Error(f"no configuration with id {config_id!r} in {self.path}.")
        return _to_row(row)

    def rows(self, status: str | None = None, kind: str | None = None) -> list[Row]:
        return [_to_row(r) for r in self._select("*", status, kind, " ORDER BY seq")]

    def count(self, status: str | None = None, kind: str | None = None) -> int:
        return self._select("count(*)", status, kind).fetchone()[0]

    def _select(self, what: str, status: str | None, kind: str | None,
                order: str = "") -> sqlite3.Cursor:
        given = {"status": status, "kind": kind}
        where = "".join(f" AND {column}=?" for column, value in given.items() if value)
        args = [value for value in given.values() if value]
        return self._db.execute(f"SELECT {what} FROM configs WHERE 1=1{where}{order}", args)

    def counts(self) -> dict[str, int]:
        found = dict(self._db.execute("SELECT status, count(*) FROM configs GROUP BY status"))
        return {status: found.get(status, 0) for status in STATUSES}


def _to_row(row: sqlite3.Row) -> Row:
    return Row(
        seq=row["seq"], id=row["id"], kind=row["kind"], config=json.loads(row["config"]),
        avg_bits=row["avg_bits"], status=row["status"],
        metrics=json.loads(row["metrics"]) if row["metrics"] else {},
        timings=json.loads(row["timings"]) if row["timings"] else {},
        error=row["error"], tags=json.loads(row["tags"]) if row["tags"] else {},
    )
