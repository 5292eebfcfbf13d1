"""Concurrent writes through the session factory (assistant/db/session.py).

SQLite allows one writer at a time; the per-process write lock must make many
threads writing at once succeed without "database is locked" and without losing
a row, while readers never wait for it. PostgreSQL takes no such lock and must
give the same result.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
import sqlalchemy as sa

from assistant.db import Conversation, Database, Message
from assistant.db.session import sqlite_write_lock
from assistant.settings import DatabaseSettings

pytestmark = pytest.mark.integration

THREADS = 16
TURNS = 20


def _conversation() -> Conversation:
    return Conversation(channel="web", audience="child", risk_severity=0, risk_state={}, needs_followup=False)


def _count(db: Database, model: type[Conversation] | type[Message]) -> int:
    with db.session() as s:
        return int(s.scalar(sa.select(sa.func.count()).select_from(model)) or 0)


def _chat_turns(db: Database, worker: int, errors: list[BaseException]) -> None:
    """What a chat turn does: read the conversation, then store two messages in one unit of work."""
    try:
        conversation_id: str | None = None
        for turn in range(TURNS):
            if conversation_id is not None:
                with db.session() as s:
                    assert s.get(Conversation, conversation_id) is not None
            with db.session() as s:
                conv = s.get(Conversation, conversation_id) if conversation_id else None
                if conv is None:
                    conv = _conversation()
                    s.add(conv)
                    s.flush()
                conv.risk_severity = max(conv.risk_severity, turn % 3)
                s.add_all([
                    Message(conversation_id=conv.id, role="user", channel="web", audience="child",
                            text=f"w{worker} t{turn}"),
                    Message(conversation_id=conv.id, role="assistant", channel="web", audience="child",
                            text="ok"),
                ])
                s.flush()
                # Work done while the transaction is open (the tip-report hook runs here).
                s.scalar(sa.select(sa.func.count()).select_from(Message))
                time.sleep(0.001)
                conversation_id = conv.id if turn % 5 != 4 else None  # every 5th turn: a new conversation
    except BaseException as exc:  # noqa: BLE001 - collected and asserted by the test
        errors.append(exc)


def test_concurrent_writers_lose_nothing_and_never_see_locked(database_url: str) -> None:
    # A short busy timeout makes SQLite's own polling fail fast without the lock (it did, with
    # "database is locked", before the lock existed); the queue on the lock stays far below it.
    db = Database(database_url, DatabaseSettings(sqlite_busy_timeout_ms=1000))
    try:
        db.upgrade()
        errors: list[BaseException] = []
        threads = [threading.Thread(target=_chat_turns, args=(db, i, errors)) for i in range(THREADS)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=120)
        assert not any(t.is_alive() for t in threads), "a writer hung"
        assert errors == []
        assert _count(db, Message) == THREADS * TURNS * 2
        assert _count(db, Conversation) == THREADS * TURNS // 5
        if db.dialect == "sqlite":
            lock = sqlite_write_lock(db.engine)
            assert lock is not None and not lock.locked()  # every transaction released it
        else:
            assert sqlite_write_lock(db.engine) is None  # PostgreSQL stays concurrent
    finally:
        db.dispose()


@pytest.fixture
def sqlite_db(tmp_path: Path) -> Database:
    db = Database(f"sqlite:///{tmp_path / 'lock.sqlite3'}", DatabaseSettings(sqlite_busy_timeout_ms=2000))
    db.upgrade()
    return db


def _run(target: object, timeout: float = 10) -> threading.Thread:
    thread = threading.Thread(target=target, daemon=True)  # type: ignore[arg-type]
    thread.start()
    thread.join(timeout)
    return thread


def test_readers_never_wait_for_the_write_lock(sqlite_db: Database) -> None:
    db = sqlite_db
    lock = sqlite_write_lock(db.engine)
    assert lock is not None
    seen: list[int] = []
    try:
        with db.session() as writer:
            writer.add(_conversation())
            writer.flush()
            assert lock.locked()  # held from the first write until the transaction ends

            def read() -> None:
                started = time.perf_counter()
                seen.append(_count(db, Conversation))
                seen.append(int((time.perf_counter() - started) * 1000))

            assert not _run(read).is_alive()
            assert seen[0] == 0  # the snapshot before the writer's commit, at once (not after a wait)
            assert seen[1] < 1000
        assert not lock.locked()
        assert _count(db, Conversation) == 1
    finally:
        db.dispose()


def test_a_second_writer_waits_for_the_first_and_then_succeeds(sqlite_db: Database) -> None:
    db = sqlite_db
    order: list[str] = []
    try:
        with db.session() as first:
            first.add(_conversation())
            first.flush()

            def write() -> None:
                with db.session() as second:
                    second.add(_conversation())
                    second.flush()
                    order.append("second wrote")

            waiter = threading.Thread(target=write, daemon=True)
            waiter.start()
            time.sleep(0.2)
            assert order == []  # queued on the lock, not polling SQLite
            order.append("first commits")
        waiter.join(10)
        assert order == ["first commits", "second wrote"]
        assert _count(db, Conversation) == 2
    finally:
        db.dispose()


def test_nested_sessions_in_one_thread_do_not_deadlock(sqlite_db: Database) -> None:
    """The lock is re-entrant per thread: a unit of work that reads, opens a second one that
    writes and commits (as escalation's access-denied audit does), then writes itself, works."""
    db = sqlite_db
    lock = sqlite_write_lock(db.engine)
    assert lock is not None

    def nested() -> None:
        with db.session() as outer:
            assert outer.scalar(sa.select(sa.func.count()).select_from(Conversation)) == 0
            with db.session() as inner:
                inner.add(_conversation())
            outer.add(_conversation())
            outer.flush()
            with db.session() as reader:  # reads inside a writing unit of work never wait
                assert reader.scalar(sa.select(sa.func.count()).select_from(Conversation)) == 1

    try:
        assert not _run(nested).is_alive()
        assert _count(db, Conversation) == 2
        assert not lock.locked()
    finally:
        db.dispose()


def test_nested_writers_in_one_thread_fail_after_the_busy_timeout_not_hang(tmp_path: Path) -> None:
    """Two open write transactions in one thread cannot both hold SQLite's single write lock:
    the re-entrant lock lets the inner one through to SQLite, which gives up after busy_timeout
    ("database is locked") instead of the thread waiting on itself forever."""
    db = Database(f"sqlite:///{tmp_path / 'nested.sqlite3'}", DatabaseSettings(sqlite_busy_timeout_ms=200))
    db.upgrade()
    outcome: list[str] = []

    def nested() -> None:
        with db.session() as outer:
            outer.add(_conversation())
            outer.flush()
            try:
                with db.session() as inner:
                    inner.add(_conversation())
                    inner.flush()
            except sa.exc.OperationalError as exc:
                outcome.append(str(exc.orig))

    try:
        assert not _run(nested).is_alive()
        assert outcome == ["database is locked"]
        assert _count(db, Conversation) == 1
    finally:
        db.dispose()


def test_write_lock_is_per_database_file_and_shared_by_engines(tmp_path: Path) -> None:
    a = Database(f"sqlite:///{tmp_path / 'a.sqlite3'}")
    a2 = Database(f"sqlite:///{tmp_path / 'a.sqlite3'}")
    b = Database(f"sqlite:///{tmp_path / 'b.sqlite3'}")
    try:
        assert sqlite_write_lock(a.engine) is sqlite_write_lock(a2.engine)
        assert sqlite_write_lock(a.engine) is not sqlite_write_lock(b.engine)
    finally:
        for db in (a, a2, b):
            db.dispose()


def test_sqlite_pool_covers_the_server_threads(tmp_path: Path) -> None:
    db = Database(f"sqlite:///{tmp_path / 'pool.sqlite3'}")
    try:
        pool = db.engine.pool
        assert isinstance(pool, sa.pool.QueuePool)
        assert pool.size() >= 40 + 2  # up to 40 request threads and the background workers
    finally:
        db.dispose()


def test_driver_level_statements_take_and_give_back_the_lock(tmp_path: Path) -> None:
    """The lock lives in the sqlite3 connection: raw driver use is covered, not only sessions."""
    db = Database(f"sqlite:///{tmp_path / 'raw.sqlite3'}")
    lock = sqlite_write_lock(db.engine)
    assert lock is not None
    raw = db.engine.raw_connection()
    try:
        conn = raw.driver_connection
        assert conn is not None
        conn.execute("CREATE TABLE t (x INTEGER)")
        assert not lock.locked()  # DDL outside a transaction: nothing left to guard
        conn.execute("SELECT count(*) FROM t")
        assert not lock.locked()
        conn.execute("INSERT INTO t VALUES (1)")
        assert lock.locked()
        conn.commit()
        assert not lock.locked()
        conn.executemany("INSERT INTO t VALUES (?)", [(2,), (3,)])
        assert lock.locked()
        conn.rollback()
        assert not lock.locked()
        assert conn.execute("SELECT count(*) FROM t").fetchone() == (1,)
    finally:
        raw.close()
        db.dispose()


def test_in_memory_sqlite_has_no_write_lock() -> None:
    db = Database("sqlite://")
    try:
        assert sqlite_write_lock(db.engine) is None
        with db.session() as s:
            assert s.scalar(sa.text("SELECT 1")) == 1
    finally:
        db.dispose()


def test_write_lock_counts_its_waits_and_holds_for_the_metrics(sqlite_db: Database) -> None:
    from assistant.metrics import Metrics

    db = sqlite_db
    lock = sqlite_write_lock(db.engine)
    assert lock is not None
    metrics = Metrics()
    metrics.watch_write_lock(lock)
    before = lock.stats()
    try:
        with db.session() as first:
            first.add(_conversation())
            first.flush()  # takes the lock
            waiter = threading.Thread(target=lambda: _write_one(db), daemon=True)
            waiter.start()
            time.sleep(0.2)  # the second writer waits this long behind the first
        waiter.join(10)
    finally:
        db.dispose()
    acquisitions, waited, held = (after - b for after, b in zip(lock.stats(), before, strict=True))
    assert acquisitions == 2
    assert 0.15 <= waited < 5 and 0.15 <= held < 5
    sample = metrics.registry.get_sample_value
    assert sample("assistant_sqlite_write_lock_acquisitions_total") == lock.stats()[0]
    assert sample("assistant_sqlite_write_lock_wait_seconds_total") == pytest.approx(lock.stats()[1])
    assert sample("assistant_sqlite_write_lock_held_seconds_total") == pytest.approx(lock.stats()[2])


def _write_one(db: Database) -> None:
    with db.session() as s:
        s.add(_conversation())
