"""The channel tables on SQLite and PostgreSQL: dedupe by unique key, a single
claim per event, raw platform ids cleared when no reply window is open."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import pytest
import sqlalchemy as sa

from assistant.channels.base import InboundMessage
from assistant.channels.models import ChannelEvent, ChannelUser
from assistant.channels.store import ChannelStore
from assistant.db import Database
from assistant.db.models import utcnow

pytestmark = pytest.mark.integration


@pytest.fixture()
def store(database_url: str) -> Iterator[ChannelStore]:
    db = Database(database_url)
    db.upgrade()
    yield ChannelStore(db)
    db.dispose()


def message(key: str = "mid-1", text: str = "chào") -> InboundMessage:
    return InboundMessage(
        channel="zalo", event_key=key, kind="text", sender_id="8421", text=text, platform_message_id=key
    )


def test_an_event_is_recorded_once(store: ChannelStore) -> None:
    first = store.record_event(message(), "mid-1", "p" * 64)
    assert first is not None
    assert store.record_event(message(), "mid-1", "p" * 64) is None
    assert store.record_event(message("mid-2"), "mid-2", "p" * 64) is not None


def test_an_event_is_claimed_once_and_its_text_erased_when_done(store: ChannelStore) -> None:
    event_id = store.record_event(message(), "mid-1", "p" * 64)
    assert event_id is not None
    claimed = store.claim(event_id, timedelta(minutes=5))
    assert claimed is not None and claimed.text == "chào" and claimed.attempts == 1
    assert store.claim(event_id, timedelta(minutes=5)) is None
    assert store.pending_events(["zalo"], timedelta(minutes=5)) == []
    # A worker that died holding it: after the lease, the event is taken again.
    assert store.pending_events(["zalo"], timedelta(0)) == [(event_id, "p" * 64)]
    again = store.claim(event_id, timedelta(0))
    assert again is not None and again.attempts == 2
    store.finish(event_id)
    with store.db.session() as s:
        row = s.get_one(ChannelEvent, event_id)
        assert (row.status, row.text, row.payload) == ("done", None, None)
    assert store.claim(event_id, timedelta(0)) is None


def test_a_failed_event_goes_back_to_pending_then_to_failed(store: ChannelStore) -> None:
    event_id = store.record_event(message(), "mid-1", "p" * 64)
    assert event_id is not None and store.claim(event_id, timedelta(minutes=5)) is not None
    store.release(event_id, "DeliveryUnavailable: down", give_up=False)
    assert store.pending_events(["zalo"], timedelta(minutes=5)) == [(event_id, "p" * 64)]
    assert store.claim(event_id, timedelta(minutes=5)) is not None
    store.release(event_id, "DeliveryUnavailable: down", give_up=True)
    assert store.pending_events(["zalo"], timedelta(0)) == []


def test_users_are_keyed_by_pseudonym_and_the_raw_id_kept_for_replies(store: ChannelStore) -> None:
    a = store.ensure_user("zalo", "a" * 64, "8421")
    assert store.ensure_user("zalo", "a" * 64, "8421") == a
    assert store.ensure_user("messenger", "a" * 64, "8421") != a
    with store.db.session() as s:
        assert s.scalar(sa.select(sa.func.count()).select_from(ChannelUser)) == 2


def test_raw_platform_ids_are_cleared_when_no_window_is_open(store: ChannelStore) -> None:
    old = store.ensure_user("zalo", "o" * 64, "1111")
    recent = store.ensure_user("zalo", "r" * 64, "2222")
    store.note_user_message(old, utcnow() - timedelta(days=8), "m-old")
    store.note_user_message(recent, utcnow() - timedelta(hours=1), "m-new")
    assert store.expire_platform_ids(utcnow() - timedelta(days=7)) == 1
    old_user, recent_user = store.user("zalo", "o" * 64), store.user("zalo", "r" * 64)
    assert old_user is not None and recent_user is not None
    assert (old_user.platform_user_id, old_user.last_platform_message_id) == (None, None)
    assert recent_user.platform_user_id == "2222"


def test_old_processed_events_are_purged(store: ChannelStore) -> None:
    done = store.record_event(message("m-done"), "m-done", "p" * 64)
    pending = store.record_event(message("m-pending"), "m-pending", "p" * 64)
    assert done is not None and pending is not None
    store.claim(done, timedelta(minutes=5))
    store.finish(done)
    assert store.purge_events(utcnow() + timedelta(seconds=1)) == 1
    assert store.pending_events(["zalo"], timedelta(minutes=5)) == [(pending, "p" * 64)]
