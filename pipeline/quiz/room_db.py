"""The quiz rooms database: one SQLite file shared by every dashboard session, its schema, and short
connections that threads and processes can share.

The file is ``<artifacts>/quiz_rooms.sqlite3`` (:func:`default_db_path`; the environment variable
``DEEPFAKE_LENS_QUIZ_DB`` points elsewhere, e.g. when the artifacts folder is read-only), opened with the
standard library's :mod:`sqlite3` in WAL mode (readers never block the writer) with a busy timeout.
Writes go through :func:`write_transaction` (``BEGIN IMMEDIATE``), so a check and the write it guards
cannot interleave with another session's. The rules of a room are :mod:`pipeline.quiz.rooms`.
"""
from __future__ import annotations

import contextlib
import os
import sqlite3
from pathlib import Path
from typing import Iterator

from pipeline.quiz.room_errors import RoomError

DB_ENV = "DEEPFAKE_LENS_QUIZ_DB"
DB_NAME = "quiz_rooms.sqlite3"
BUSY_TIMEOUT_S = 30.0
SCHEMA_VERSION = 1

SCHEMA = """
CREATE TABLE IF NOT EXISTS rooms (
    code TEXT PRIMARY KEY,
    host_token TEXT NOT NULL,
    run_id TEXT NOT NULL,
    mode TEXT NOT NULL CHECK (mode IN ('single', 'paired')),
    settings TEXT NOT NULL,
    n_rounds INTEGER NOT NULL CHECK (n_rounds >= 1),
    current_round INTEGER NOT NULL DEFAULT 0,
    created REAL NOT NULL,
    expires REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS rounds (
    room TEXT NOT NULL REFERENCES rooms(code) ON DELETE CASCADE,
    idx INTEGER NOT NULL,
    body TEXT NOT NULL,
    answer TEXT NOT NULL,
    revealed REAL,
    PRIMARY KEY (room, idx)
);
CREATE TABLE IF NOT EXISTS players (
    id INTEGER PRIMARY KEY,
    room TEXT NOT NULL REFERENCES rooms(code) ON DELETE CASCADE,
    nickname TEXT NOT NULL COLLATE NOCASE,
    token TEXT NOT NULL UNIQUE,
    joined REAL NOT NULL,
    UNIQUE (room, nickname)
);
CREATE TABLE IF NOT EXISTS votes (
    room TEXT NOT NULL,
    idx INTEGER NOT NULL,
    player INTEGER NOT NULL REFERENCES players(id) ON DELETE CASCADE,
    answer TEXT NOT NULL,
    at REAL NOT NULL,
    UNIQUE (room, idx, player),
    FOREIGN KEY (room, idx) REFERENCES rounds(room, idx) ON DELETE CASCADE
);
CREATE INDEX IF NOT EXISTS votes_by_round ON votes (room, idx);
"""


def default_db_path() -> Path:
    """``$DEEPFAKE_LENS_QUIZ_DB`` when set, else ``<artifacts folder>/quiz_rooms.sqlite3``."""
    from pipeline.results import artifacts_dir

    env = os.environ.get(DB_ENV, "").strip()
    return Path(env).expanduser() if env else artifacts_dir() / DB_NAME


@contextlib.contextmanager
def connect(db: Path | str | None = None) -> Iterator[sqlite3.Connection]:
    """A fresh connection to the rooms database (created with its schema if missing), in autocommit
    mode: callers open transactions with ``BEGIN IMMEDIATE``. Closed on exit.

    Raises :class:`RoomError` when the file cannot be opened or created (e.g. a read-only folder)."""
    path = Path(db) if db is not None else default_db_path()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        con = sqlite3.connect(path, timeout=BUSY_TIMEOUT_S, isolation_level=None)
    except (OSError, sqlite3.Error) as exc:
        raise RoomError(f"The quiz rooms database {path} cannot be opened ({exc}). Make the folder writable "
                        f"or set {DB_ENV} to a writable file.") from exc
    try:
        con.row_factory = sqlite3.Row
        con.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_S * 1000)}")
        con.execute("PRAGMA foreign_keys = ON")
        mode = con.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        if str(mode).lower() != "wal":
            raise RoomError(f"The quiz rooms database {path} cannot use WAL mode (journal mode {mode}).")
        if con.execute("PRAGMA user_version").fetchone()[0] < SCHEMA_VERSION:
            with write_transaction(con):
                for statement in SCHEMA.split(";"):
                    if statement.strip():
                        con.execute(statement)
                con.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        yield con
    except sqlite3.OperationalError as exc:
        raise RoomError(f"The quiz rooms database {path} cannot be used ({exc}). Make the folder writable or "
                        f"set {DB_ENV} to a writable file.") from exc
    finally:
        con.close()


@contextlib.contextmanager
def write_transaction(con: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """One write transaction: ``BEGIN IMMEDIATE`` takes the write lock at once (waiting up to the busy
    timeout), commits on success, rolls back on any error."""
    con.execute("BEGIN IMMEDIATE")
    try:
        yield con
    except BaseException:
        con.execute("ROLLBACK")
        raise
    con.execute("COMMIT")
