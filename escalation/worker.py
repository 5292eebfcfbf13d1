"""The delivery worker: outbox -> sinks, at least once, with backoff, every attempt recorded.

Run it as ``python -m assistant worker`` (any number of processes on
PostgreSQL), or let ``serve`` run one as a background thread
(``escalation.worker_in_serve``, on by default: ``make run`` is one command).

Each round: re-alert urgent reports left unreviewed (``sweep``), claim due
rows (``escalation.outbox.claim``), deliver each outside any transaction, then
record the attempt and its outcome:

- delivered: the row is done; a report whose every recipient has it is ``sent``
  (and ``acknowledged`` when the receiver says so in its answer);
- unavailable (network, timeout, 5xx, 408, 429): retried after an exponential
  backoff with jitter, ``base * 2**(n-1)`` capped, half fixed and half random;
  after ``alert_after_attempts`` the counselors are alerted and the report is
  flagged back in their queue; after ``max_attempts`` the row stops until a
  counselor redelivers it. Never dropped silently;
- rejected (other 4xx): no retry; counselors are alerted at once.

The idempotency key of a report delivery is ``<report id>.v<version>`` (the
``webhook-id``): a crash between delivering and recording means the same
message is delivered again with the same id, which the receiver ignores.
"""

from __future__ import annotations

import logging
import os
import random
import socket
import threading
import time
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta

from sqlalchemy.exc import SQLAlchemyError

from assistant.db import Database
from assistant.db.models import utcnow
from assistant.settings import Settings
from escalation.errors import DeliveryRejected, DeliveryUnavailable
from escalation.models import DeliveryAttempt, OutboxMessage
from escalation.outbox import Claim, claim, still_owned
from escalation.service import EscalationService
from escalation.sinks import DeliverySink, Envelope, FileDropDeliverySink, make_sink

log = logging.getLogger(__name__)


class SinkRegistry:
    """The sink of each destination, from the settings; ``overrides`` replace some (tests)."""

    def __init__(
        self, settings: Settings, service: EscalationService, overrides: dict[str, DeliverySink] | None = None
    ) -> None:
        self.settings = settings
        self.service = service
        self.overrides = dict(overrides or {})
        self._cache: dict[str, DeliverySink] = {}

    def get(self, destination: str) -> DeliverySink:
        if destination in self.overrides:
            return self.overrides[destination]
        if destination not in self._cache:
            endpoint = self.service.endpoint_for(destination)
            folder = self.settings.outbox_dir / destination.replace(":", "_")
            if endpoint is None:
                self._cache[destination] = FileDropDeliverySink(folder)
            else:
                self._cache[destination] = make_sink(endpoint, self.settings.escalation.smtp, folder)
        return self._cache[destination]


class DeliveryWorker:
    def __init__(
        self,
        db: Database,
        settings: Settings,
        service: EscalationService,
        sinks: SinkRegistry | None = None,
        worker_id: str | None = None,
        rng: random.Random | None = None,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.db = db
        self.settings = settings
        self.esc = settings.escalation
        self.service = service
        self.sinks = sinks or SinkRegistry(settings, service)
        self.worker_id = worker_id or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        self.rng = rng or random.Random()
        self.clock = clock
        self._last_sweep = 0.0
        self._last_retention: float | None = None
        self.delivered = 0
        self.failed_attempts = 0

    def backoff_seconds(self, attempts: int) -> float:
        """Exponential backoff with "equal jitter": half of the delay fixed, half random."""
        delay = min(self.esc.backoff_cap_seconds, self.esc.backoff_base_seconds * 2 ** max(attempts - 1, 0))
        return float(delay / 2 + self.rng.uniform(0, delay / 2))

    def sweep(self) -> int:
        with self.db.session() as session:
            return self.service.sweep(session, self.clock())

    def retention_if_due(self) -> None:
        """The retention job (assistant.privacy): at start, then every retention_interval_hours."""
        from assistant.privacy.service import PrivacyService

        interval = self.settings.privacy.retention_interval_hours * 3600
        if self._last_retention is not None and time.monotonic() - self._last_retention < interval:
            return
        self._last_retention = time.monotonic()
        try:
            # Real time, not self.clock: a test clock must never age real data into a purge.
            report = PrivacyService(self.db, self.settings.privacy).run_retention()
        except SQLAlchemyError as exc:
            log.error("retention job failed (retried next interval): %s", type(exc).__name__)
            return
        if report.conversations:
            log.info("retention job purged data", extra=report.to_dict())

    def run_once(self) -> int:
        """One round: sweep (at most every 30 s), claim a batch, deliver it. Returns rows handled."""
        if time.monotonic() - self._last_sweep >= 30:
            self._last_sweep = time.monotonic()
            self.sweep()
        self.retention_if_due()
        with self.db.session() as session:
            claims = claim(session, self.worker_id, self.esc.batch_size, self.esc.lease_seconds, self.clock())
        for c in claims:
            self.deliver(c)
        return len(claims)

    def _envelope(self, item: OutboxMessage) -> Envelope:
        return Envelope(
            message_id=item.message_id,
            event_type=item.event_type,
            destination=item.destination,
            payload=item.payload,
            notice=self.service.notice_for(item),
        )

    def deliver(self, c: Claim) -> str:
        """Deliver one claimed row; returns the outcome."""
        with self.db.session() as session:
            item = session.get(OutboxMessage, c.outbox_id)
            if item is None or not still_owned(item, c.token):
                return "lost"
            envelope = self._envelope(item)
        sink = self.sinks.get(envelope.destination)
        started = self.clock()
        status_code: int | None = None
        reference: str | None = None
        acknowledged = False
        error: str | None = None
        try:
            receipt = sink.deliver(envelope)
            outcome = "delivered"
            status_code, reference, acknowledged = receipt.status_code, receipt.reference, receipt.acknowledged
        except DeliveryRejected as exc:
            outcome, error, status_code = "rejected", str(exc), exc.status
        except DeliveryUnavailable as exc:
            outcome, error, status_code = "unavailable", str(exc), exc.status
        except Exception as exc:  # noqa: BLE001 - a sink bug must not stop the worker: recorded and retried
            log.exception("sink %s failed unexpectedly", sink.name)
            outcome, error = "unavailable", f"{type(exc).__name__}: {exc}"[:300]
        finished = self.clock()
        with self.db.session() as session:
            item = session.get(OutboxMessage, c.outbox_id, with_for_update=True)
            assert item is not None
            session.add(
                DeliveryAttempt(
                    outbox_id=item.id,
                    number=item.attempts + 1,
                    worker=self.worker_id[:64],
                    sink=sink.name[:16],
                    outcome=outcome,
                    status_code=status_code,
                    error=error[:500] if error else None,
                    started_at=started,
                    finished_at=finished,
                )
            )
            if not still_owned(item, c.token):
                # The lease ran out and another worker owns the row now: record, change nothing.
                log.warning("lease lost before recording", extra={"outbox_id": item.id, "outcome": outcome})
                return "lost"
            item.attempts += 1
            item.claimed_by = item.claim_token = None
            item.claimed_until = None
            if outcome == "delivered":
                item.status = "delivered"
                item.delivered_at = finished
                item.reference = reference
                item.last_error = None
                self.service.after_delivery(session, item, acknowledged)
                self.delivered += 1
            else:
                self.failed_attempts += 1
                item.last_error = (error or outcome)[:500]
                give_up = outcome == "rejected" or item.attempts >= self.esc.max_attempts
                if give_up:
                    item.status = "failed"
                else:
                    item.next_attempt_at = finished + timedelta(seconds=self.backoff_seconds(item.attempts))
                if not item.failure_alerted and (give_up or item.attempts >= self.esc.alert_after_attempts):
                    item.failure_alerted = True
                    self.service.delivery_failing(session, item)
                log.warning(
                    "delivery attempt failed",
                    extra={"outbox_id": item.id, "destination": item.destination, "attempt": item.attempts,
                           "outcome": outcome, "status_code": status_code},
                )
        return outcome

    def run(self, stop: threading.Event, idle_exit: float | None = None) -> None:
        """Loop until ``stop`` is set (or, with ``idle_exit``, after that many idle seconds)."""
        log.info("delivery worker started", extra={"worker": self.worker_id})
        idle_since = time.monotonic()
        while not stop.is_set():
            try:
                handled = self.run_once()
            except SQLAlchemyError as exc:
                log.error("worker round failed (database): %s", type(exc).__name__)
                handled = 0
                stop.wait(min(5.0, self.esc.worker_poll_seconds * 5))
            if handled:
                idle_since = time.monotonic()
                continue
            if idle_exit is not None and time.monotonic() - idle_since >= idle_exit:
                break
            stop.wait(self.esc.worker_poll_seconds)
        log.info("delivery worker stopped", extra={"worker": self.worker_id, "delivered": self.delivered})


class WorkerThread:
    """The worker as a daemon thread of another process (``serve``)."""

    def __init__(self, worker: DeliveryWorker) -> None:
        self.worker = worker
        self.stop = threading.Event()
        self.thread = threading.Thread(target=worker.run, args=(self.stop,), name="delivery-worker", daemon=True)

    def start(self) -> WorkerThread:
        self.thread.start()
        return self

    def close(self, timeout: float = 10.0) -> None:
        self.stop.set()
        self.thread.join(timeout)
