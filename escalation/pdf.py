"""PDF export of one tip report (fpdf2, with a Unicode font for Vietnamese).

The font is DejaVu Sans: from the system when installed, else the copy that
matplotlib (a dependency) ships. Evidence is printed as text excerpts with
their hashes: there are never images to print.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from fpdf import FPDF

from assistant.risk.taxonomy import LABELS_VI
from escalation.routing import Router
from escalation.schemas import TipReport
from escalation.states import LABELS_VI as STATUS_VI

_FONT_CANDIDATES = (
    Path("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"),
)


@lru_cache(maxsize=1)
def font_path() -> Path:
    for path in _FONT_CANDIDATES:
        if path.exists():
            return path
    import matplotlib

    return Path(matplotlib.get_data_path()) / "fonts" / "ttf" / "DejaVuSans.ttf"


def _yes_no(value: bool | None) -> str:
    return "không rõ" if value is None else ("có" if value else "không")


def report_pdf(report: TipReport, router: Router) -> bytes:
    pdf = FPDF(format="A4")
    pdf.set_title(f"Báo cáo {report.meta.id}")
    pdf.set_author("Bạn An Toàn – Đồng Nai")
    pdf.set_creator("ban-an-toan")
    pdf.add_font("DejaVu", "", str(font_path()))
    pdf.set_auto_page_break(True, margin=15)
    pdf.add_page()
    width = pdf.epw

    def heading(text: str) -> None:
        pdf.ln(2)
        pdf.set_font("DejaVu", size=12)
        pdf.multi_cell(width, 7, text, new_x="LMARGIN", new_y="NEXT")
        pdf.set_font("DejaVu", size=9.5)

    def line(label: str, value: object) -> None:
        pdf.multi_cell(width, 5, f"{label}: {value}", new_x="LMARGIN", new_y="NEXT")

    pdf.set_font("DejaVu", size=15)
    pdf.multi_cell(width, 8, "BÁO CÁO BẢO VỆ TRẺ EM – MẬT", new_x="LMARGIN", new_y="NEXT")
    pdf.set_font("DejaVu", size=9.5)
    m, u, i, c, p, h = report.meta, report.urgency, report.incident, report.child, report.reported_person, report.handling
    line("Mã báo cáo", f"{m.id} (phiên bản {m.version}, lược đồ {m.schema_version})")
    line("Tạo lúc (UTC)", m.created_at.strftime("%Y-%m-%d %H:%M"))
    line("Kênh / người báo", f"{m.channel} / {m.reporter_role}")
    line("Trạng thái", STATUS_VI.get(h.status, h.status))
    line("Mức độ", f"{u.severity}{' – KHẨN CẤP' if u.urgent else ''}")

    heading("Sự việc")
    line("Loại", ", ".join(LABELS_VI.get(cat, cat) for cat in i.categories))
    line("Mô tả", i.description)
    line("Thời gian", i.when or "không rõ")
    line("Đang tiếp diễn", i.ongoing)
    line("Nền tảng", ", ".join(i.platforms) or "không rõ")
    line("Nơi xảy ra", i.place)
    line("Phường/xã", i.ward.name if i.ward else "không rõ")

    heading("Trẻ")
    line("Mã ẩn danh", c.pseudonym)
    line("Tuổi", f"{c.age}{' (ước tính)' if c.age_estimated else ''}" if c.age is not None else "không rõ")
    line("Giới tính", c.gender or "không rõ")
    line("Hiện an toàn", _yes_no(c.safe_now))
    line("Người chăm sóc biết", _yes_no(c.carer_knows))

    heading("Người bị báo cáo")
    line("Quan hệ", p.relationship or "không rõ")
    line("Tên tài khoản", ", ".join(p.screen_names) or "—")
    line("Trang cá nhân", ", ".join(p.profile_urls) or "—")
    line("Số điện thoại", ", ".join(p.phone_numbers) or "—")

    heading("Bằng chứng (trích tin nhắn; không có hình ảnh)")
    for item in report.evidence.items:
        line(item.at.strftime("%Y-%m-%d %H:%M"), item.excerpt)
        pdf.set_font("DejaVu", size=7)
        line("SHA-256", item.sha256)
        pdf.set_font("DejaVu", size=9.5)
    if report.evidence.urls:
        line("Đường dẫn", ", ".join(report.evidence.urls))

    heading("Xử lý")
    line("Người phụ trách", h.assigned_to or "chưa giao")
    line("Cơ quan nhận", ", ".join(router.agency_name(a) for a in h.recipients))
    if h.decision:
        line("Quyết định", h.decision)
    for d in h.deliveries:
        line("Chuyển đến", f"{d.agency} v{d.version}: {d.status}, {d.attempts} lần thử")
    for change in h.history:
        line(change.at.strftime("%Y-%m-%d %H:%M"), f"{STATUS_VI.get(change.status, change.status)} – {change.by}"
             + (f" ({change.reason})" if change.reason else ""))
    for note in h.notes:
        line(f"Ghi chú {note.at.strftime('%Y-%m-%d %H:%M')} {note.by}", note.text)
    return bytes(pdf.output())
