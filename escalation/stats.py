"""Statistics for supervisors: counts and response times against the 12-hour rule.

Counts by primary category, severity, ward, month (of creation, UTC) and
channel; times in minutes from the first disclosure to review (approved,
dismissed or merged), to sending (every routed agency has it) and to
acknowledgement (median, 90th percentile, mean, count); and the share of
reports *handled* within 12 hours (Decree 56/2017, Art. 26), where handled
means sent to the agencies or dismissed by a counselor. Reports younger than
12 hours that are not handled yet are left out of that share (their clock is
still running) and counted as ``open_within_deadline``.
Computed in Python over the reports of the period (a city's volume).
"""

from __future__ import annotations

import statistics
from collections import Counter
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from escalation.models import TipReportRow
from escalation.service import aware
from escalation.wards import ward_by_code

DEADLINE = timedelta(hours=12)


def _summary(minutes: list[float]) -> dict[str, float | int | None]:
    if not minutes:
        return {"count": 0, "median": None, "p90": None, "mean": None}
    ordered = sorted(minutes)
    p90 = ordered[min(len(ordered) - 1, int(round(0.9 * (len(ordered) - 1))))]
    return {
        "count": len(ordered),
        "median": round(statistics.median(ordered), 2),
        "p90": round(p90, 2),
        "mean": round(statistics.fmean(ordered), 2),
    }


def compute(session: Session, now: datetime, since: datetime | None = None, until: datetime | None = None) -> dict[str, Any]:
    query = select(TipReportRow).where(TipReportRow.status != "merged")
    if since is not None:
        query = query.where(TipReportRow.created_at >= since)
    if until is not None:
        query = query.where(TipReportRow.created_at < until)
    rows = list(session.scalars(query))
    by_category: Counter[str] = Counter()
    by_severity: Counter[str] = Counter()
    by_ward: Counter[str] = Counter()
    by_month: Counter[str] = Counter()
    by_channel: Counter[str] = Counter()
    by_status: Counter[str] = Counter()
    to_review: list[float] = []
    to_sent: list[float] = []
    to_ack: list[float] = []
    handled_in_time = handled_late = open_late = open_in_time = 0
    for r in rows:
        start = aware(r.first_disclosure_at)
        by_category[r.primary_category] += 1
        by_severity[str(r.severity)] += 1
        ward = ward_by_code(r.ward_code) if r.ward_code is not None else None
        by_ward[ward.name if ward else "unknown"] += 1
        by_month[aware(r.created_at).strftime("%Y-%m")] += 1
        by_channel[r.channel] += 1
        by_status[r.status] += 1
        if r.reviewed_at:
            to_review.append((aware(r.reviewed_at) - start).total_seconds() / 60)
        if r.sent_at:
            to_sent.append((aware(r.sent_at) - start).total_seconds() / 60)
        if r.acknowledged_at:
            to_ack.append((aware(r.acknowledged_at) - start).total_seconds() / 60)
        handled_at = r.sent_at or (r.closed_at if r.status == "dismissed" else None)
        if handled_at is not None:
            if aware(handled_at) - start <= DEADLINE:
                handled_in_time += 1
            else:
                handled_late += 1
        elif now - start > DEADLINE:
            open_late += 1
        else:
            open_in_time += 1
    judged = handled_in_time + handled_late + open_late
    return {
        "total": len(rows),
        "by_category": dict(by_category.most_common()),
        "by_severity": dict(sorted(by_severity.items())),
        "by_ward": dict(by_ward.most_common()),
        "by_month": dict(sorted(by_month.items())),
        "by_channel": dict(by_channel.most_common()),
        "by_status": dict(by_status.most_common()),
        "minutes_to_review": _summary(to_review),
        "minutes_to_sent": _summary(to_sent),
        "minutes_to_acknowledged": _summary(to_ack),
        "within_12h": {
            "handled_in_time": handled_in_time,
            "handled_late": handled_late,
            "open_past_deadline": open_late,
            "open_within_deadline": open_in_time,
            "share": round(handled_in_time / judged, 4) if judged else None,
        },
    }
