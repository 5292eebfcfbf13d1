"""The tip report's state machine.

    pending_review ──approve──> approved ──(all deliveries done)──> sent ──acknowledge──> acknowledged ──close──> closed
          │                        │                                 │                                            ^
          ├──dismiss (reason)──> dismissed                           └────────────────close (reason)──────────────┤
          └──merge──> merged       └──dismiss / merge                                                              │
                                                                                      approved ──close (reason)────┘

Urgent reports (severity 4) take the same path: they skip nothing, but the
on-call group is alerted at once. ``dismissed``, ``merged`` and ``closed`` are
final. Every change is an event in the audit log (``TipReportApproved`` ...).
"""

from __future__ import annotations

from typing import Final

from escalation.errors import IllegalTransition

PENDING_REVIEW: Final = "pending_review"
APPROVED: Final = "approved"
SENT: Final = "sent"
ACKNOWLEDGED: Final = "acknowledged"
CLOSED: Final = "closed"
DISMISSED: Final = "dismissed"
MERGED: Final = "merged"

STATUSES: tuple[str, ...] = (PENDING_REVIEW, APPROVED, SENT, ACKNOWLEDGED, CLOSED, DISMISSED, MERGED)
OPEN_STATUSES: frozenset[str] = frozenset({PENDING_REVIEW, APPROVED, SENT, ACKNOWLEDGED})
FINAL_STATUSES: frozenset[str] = frozenset({CLOSED, DISMISSED, MERGED})
EDITABLE_STATUSES: frozenset[str] = frozenset({PENDING_REVIEW})
"""What was approved is what is sent: edits end at approval (new disclosures still append)."""

TRANSITIONS: dict[str, frozenset[str]] = {
    PENDING_REVIEW: frozenset({APPROVED, DISMISSED, MERGED}),
    APPROVED: frozenset({SENT, DISMISSED, MERGED, CLOSED}),
    SENT: frozenset({ACKNOWLEDGED, CLOSED}),
    ACKNOWLEDGED: frozenset({CLOSED}),
    CLOSED: frozenset(),
    DISMISSED: frozenset(),
    MERGED: frozenset(),
}

EVENTS: dict[str, str] = {
    APPROVED: "TipReportApproved",
    SENT: "TipReportSent",
    ACKNOWLEDGED: "TipReportAcknowledged",
    CLOSED: "TipReportClosed",
    DISMISSED: "TipReportDismissed",
    MERGED: "TipReportMerged",
}
"""The past-tense event recorded for a move into each state."""

REASON_REQUIRED: frozenset[str] = frozenset({DISMISSED, CLOSED})

LABELS_VI: dict[str, str] = {
    PENDING_REVIEW: "chờ xem xét",
    APPROVED: "đã duyệt",
    SENT: "đã gửi",
    ACKNOWLEDGED: "đã tiếp nhận",
    CLOSED: "đã đóng",
    DISMISSED: "đã bỏ qua",
    MERGED: "đã gộp",
}


def check_transition(current: str, target: str, reason: str | None = None) -> None:
    """Raise ``IllegalTransition`` unless ``current -> target`` is allowed (with a reason when required)."""
    if current not in TRANSITIONS or target not in TRANSITIONS:
        raise IllegalTransition(
            f"Trạng thái không hợp lệ: {current!r} → {target!r}.", f"Unknown status: {current!r} -> {target!r}."
        )
    if target not in TRANSITIONS[current]:
        allowed = ", ".join(sorted(TRANSITIONS[current])) or "none (final state)"
        raise IllegalTransition(
            f"Không thể chuyển báo cáo từ '{LABELS_VI[current]}' sang '{LABELS_VI[target]}'.",
            f"Cannot move a report from {current} to {target}; allowed from {current}: {allowed}.",
        )
    if target in REASON_REQUIRED and not (reason and reason.strip()):
        raise IllegalTransition(
            f"Cần ghi lý do khi chuyển sang '{LABELS_VI[target]}'.",
            f"A reason is required to move a report to {target}.",
        )
