"""Engine, sessions and migrations.

SQLite (the embedded default) runs in WAL mode with a busy timeout and foreign
keys on; PostgreSQL is used by URL. Migrations are Alembic's, driven from code
so the CLI and the tests need no ``alembic.ini``.

Writes on SQLite
----------------
SQLite has one writer at a time per database file. WAL lets readers run beside
that writer, and ``busy_timeout`` makes a second writer wait instead of failing
at once; but that wait is SQLite polling (sleeps of 1 to 100 ms) with no queue,
so under load an unlucky writer can lose every round and give up with
"database is locked" when the timeout runs out (2 of 5,551 requests in
``bench chat`` at saturation), and the sleeps leave the lock idle (92 msg/s).

So, on SQLite only, the writers of one process take turns on a Python lock
(:class:`WriteLock`, one per database file, shared by every engine of the
process) before they reach SQLite's:

- A connection takes it at its first writing statement (anything but
  ``SELECT``/``PRAGMA``/``EXPLAIN``/``VALUES``), which is where the ``sqlite3``
  driver opens the transaction (``BEGIN`` before the first INSERT, UPDATE,
  DELETE or REPLACE: reads before it run outside a transaction), and gives it
  back when that transaction ends (commit, rollback, close; or at once when
  the statement left no transaction open). A unit of work that only reads
  never touches it: readers never wait for a writer, in Python or in SQLite.
- Waiters are served first come, first served and are woken by the release,
  not by a timer: a writer waits for the writers ahead of it, no more. The
  wait is bounded by ``sqlite_busy_timeout_ms`` like SQLite's own (then
  "database is locked", as from SQLite).
- It is re-entrant per thread, like an ``RLock``: a unit of work that opens a
  second one in the same thread (escalation's access-denied audit does) does
  not wait on itself. Two *open write* transactions in one thread cannot both
  hold SQLite's single write lock, though: the inner one then fails after
  ``busy_timeout`` as it did without this lock, rather than hanging. Unlike an
  ``RLock`` it may be released by another thread (a connection the pool
  resets after a garbage-collected session), since it belongs to the
  transaction, not to the thread.

Several processes on one SQLite file (uvicorn workers, ``python -m assistant
worker``) each have their own lock; between them only SQLite's ``busy_timeout``
arbitrates, as before. PostgreSQL takes no lock here: its writers stay
concurrent (row locks, ``SKIP LOCKED``).

The SQLite pool keeps a connection for each thread that may hold one at once
(``sqlite_pool_size``: the server's 40 worker threads, anyio's default, plus the
background workers), so a request never queues for a connection; SQLite
connections are cheap and, beyond its write lock, SQLite needs no limit. A
smaller pool could also leave the writer that holds the lock waiting for a
connection (a nested unit of work) held by threads queued behind it.
"""

from __future__ import annotations

import os
import re
import sqlite3
import threading
import time
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Self, cast
from weakref import WeakKeyDictionary

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.orm import Session, sessionmaker

from assistant.crypto import Keyring, attach_keyring
from assistant.settings import DatabaseSettings

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"


# -- SQLite: one writer at a time per process -----------------------------------
class WriteLock:
    """A FIFO lock, re-entrant per thread, that may be released by any thread.

    ``acquire`` hands the lock over in arrival order: ``release`` gives it to
    the oldest waiter directly (no race between the woken waiter and a newcomer).
    """

    def __init__(self) -> None:
        self._mutex = threading.Lock()
        self._owner: int | None = None
        self._depth = 0
        self._waiters: deque[tuple[int, threading.Event]] = deque()
        # Totals since start (``stats``): the writes of a busy service queue here.
        self._acquisitions = 0
        self._wait_seconds = 0.0
        self._held_seconds = 0.0
        self._held_since = 0.0

    def _granted(self, asked_at: float) -> None:
        """Count one outermost acquisition (with ``_mutex`` held)."""
        now = time.perf_counter()
        self._acquisitions += 1
        self._wait_seconds += now - asked_at
        self._held_since = now

    def stats(self) -> tuple[int, float, float]:
        """(acquisitions, seconds spent waiting for the lock, seconds it was held), since start."""
        with self._mutex:
            return self._acquisitions, self._wait_seconds, self._held_seconds

    def acquire(self, timeout: float | None = None) -> bool:
        me = threading.get_ident()
        asked_at = time.perf_counter()
        with self._mutex:
            if self._owner is None and not self._waiters:
                self._owner, self._depth = me, 1
                self._granted(asked_at)
                return True
            if self._owner == me:
                self._depth += 1
                return True
            turn = (me, threading.Event())
            self._waiters.append(turn)
        if turn[1].wait(timeout):
            with self._mutex:
                self._granted(asked_at)
            return True
        with self._mutex:
            if turn[1].is_set():  # handed over just as the wait timed out
                self._granted(asked_at)
                return True
            self._waiters.remove(turn)
            return False

    def release(self) -> None:
        with self._mutex:
            if self._owner is None:
                raise RuntimeError("release of an unlocked WriteLock")
            self._depth -= 1
            if self._depth:
                return
            self._held_seconds += time.perf_counter() - self._held_since
            if self._waiters:
                owner, wake = self._waiters.popleft()
                self._owner, self._depth = owner, 1
                wake.set()
            else:
                self._owner = None

    def locked(self) -> bool:
        with self._mutex:
            return self._owner is not None


_WRITE_LOCKS: dict[str, WriteLock] = {}
_ENGINE_LOCKS: WeakKeyDictionary[Engine, WriteLock] = WeakKeyDictionary()
_WRITE_LOCKS_GUARD = threading.Lock()
_READ_ONLY = re.compile(r"\s*(?:SELECT|PRAGMA|EXPLAIN|VALUES)\b", re.IGNORECASE)


def _write_lock_for(path: str) -> WriteLock:
    key = os.path.realpath(path)
    with _WRITE_LOCKS_GUARD:
        return _WRITE_LOCKS.setdefault(key, WriteLock())


class _LockingCursor(sqlite3.Cursor):
    """Takes the connection's write lock before a writing statement."""

    def execute(self, sql: str, parameters: Any = (), /) -> Self:
        conn = cast(_LockingConnection, self.connection)
        took = conn.before_statement(sql)
        try:
            super().execute(sql, parameters)
        finally:
            if took and not conn.in_transaction:  # autocommit, DDL, or BEGIN failed: nothing to guard
                conn.release_write_lock()
        return self

    def executemany(self, sql: str, seq_of_parameters: Any, /) -> Self:
        conn = cast(_LockingConnection, self.connection)
        took = conn.before_statement(sql)
        try:
            super().executemany(sql, seq_of_parameters)
        finally:
            if took and not conn.in_transaction:
                conn.release_write_lock()
        return self


class _LockingConnection(sqlite3.Connection):
    """A ``sqlite3`` connection that holds its database's :class:`WriteLock` during write transactions."""

    write_lock: WriteLock | None = None
    lock_timeout: float = 5.0
    _holds_write_lock = False

    def cursor(self, factory: Any = None) -> Any:
        return super().cursor(factory or _LockingCursor)

    def execute(self, sql: str, parameters: Any = (), /) -> sqlite3.Cursor:
        # sqlite3.Connection.execute would run the statement without the cursor's execute.
        cursor: sqlite3.Cursor = self.cursor().execute(sql, parameters)
        return cursor

    def executemany(self, sql: str, seq_of_parameters: Any, /) -> sqlite3.Cursor:
        cursor: sqlite3.Cursor = self.cursor().executemany(sql, seq_of_parameters)
        return cursor

    def before_statement(self, sql: str) -> bool:
        """Take the write lock for a writing statement; True when this call took it."""
        lock = self.write_lock
        if lock is None or self._holds_write_lock or _READ_ONLY.match(sql):
            return False
        if not lock.acquire(self.lock_timeout):
            raise sqlite3.OperationalError(
                f"database is locked (waited {self.lock_timeout:.1f} s for this process's SQLite write lock)"
            )
        self._holds_write_lock = True
        return True

    def release_write_lock(self) -> None:
        if self._holds_write_lock and self.write_lock is not None:
            self._holds_write_lock = False
            self.write_lock.release()

    def commit(self) -> None:
        super().commit()  # on failure the transaction (and the lock) stays until the rollback
        self.release_write_lock()

    def rollback(self) -> None:
        try:
            super().rollback()
        finally:
            self.release_write_lock()

    def close(self) -> None:
        try:
            super().close()
        finally:
            self.release_write_lock()


def sqlite_write_lock(engine: Engine) -> WriteLock | None:
    """The write lock of an SQLite file engine (None for PostgreSQL and in-memory SQLite)."""
    return _ENGINE_LOCKS.get(engine)


def _sqlite_path(url: str) -> str | None:
    """The file of an SQLite URL; None for an in-memory database."""
    path = url.split("///", 1)[-1] if "///" in url else ""
    path = path.split("?", 1)[0]
    if not path or path == ":memory:" or path.startswith("file::memory:"):
        return None
    return path


def make_engine(url: str, settings: DatabaseSettings | None = None) -> Engine:
    """One engine per process; SQLite gets WAL, busy timeout, foreign keys and the write lock."""
    settings = settings or DatabaseSettings()
    kwargs: dict[str, Any] = {"echo": settings.echo, "future": True}
    sqlite = url.startswith("sqlite")
    path = _sqlite_path(url) if sqlite else None
    lock = _write_lock_for(path) if path else None
    if sqlite:
        if path:
            Path(path).parent.mkdir(parents=True, exist_ok=True)
            kwargs.update(pool_size=settings.sqlite_pool_size, max_overflow=settings.sqlite_pool_size // 4)
        kwargs["connect_args"] = {
            "check_same_thread": False,
            "timeout": settings.sqlite_busy_timeout_ms / 1000,
            "factory": _LockingConnection,
        }
    else:
        kwargs.update(pool_size=settings.pool_size, max_overflow=settings.pool_size, pool_pre_ping=True)
    engine = create_engine(url, **kwargs)
    if sqlite:
        busy = settings.sqlite_busy_timeout_ms
        if lock is not None:
            _ENGINE_LOCKS[engine] = lock

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute(f"PRAGMA busy_timeout={int(busy)}")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.close()
            if isinstance(dbapi_conn, _LockingConnection):
                dbapi_conn.write_lock = lock
                dbapi_conn.lock_timeout = busy / 1000

    return engine


def _alembic_config(engine: Engine) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.attributes["engine"] = engine
    return cfg


def upgrade(engine: Engine, revision: str = "head") -> None:
    command.upgrade(_alembic_config(engine), revision)


def downgrade(engine: Engine, revision: str) -> None:
    command.downgrade(_alembic_config(engine), revision)


def head_revision() -> str | None:
    script = ScriptDirectory.from_config(_alembic_config(create_engine("sqlite://")))
    return script.get_current_head()


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


class Database:
    """The engine and session factory of one instance."""

    def __init__(
        self, url: str, settings: DatabaseSettings | None = None, keyring: Keyring | None = None
    ) -> None:
        self.url = url
        self.engine = make_engine(url, settings)
        # Encrypted columns use the keys of THIS engine (development key when none is given).
        self.keyring = keyring or Keyring.development()
        attach_keyring(self.engine, self.keyring)
        self.sessionmaker = sessionmaker(self.engine, expire_on_commit=False)

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    def upgrade(self) -> None:
        upgrade(self.engine)

    def is_current(self) -> bool:
        return current_revision(self.engine) == head_revision()

    def ping(self) -> bool:
        with self.engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        return True

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A unit of work: committed on success, rolled back on any error."""
        session = self.sessionmaker()
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise
        finally:
            session.close()

    def dispose(self) -> None:
        self.engine.dispose()
