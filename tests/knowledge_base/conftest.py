from __future__ import annotations

import textwrap
from pathlib import Path

import pytest


def write_article(
    folder: Path,
    article_id: str,
    title: str,
    body: str,
    audience: str = "child",
    age_band: str = '["8-11", "12-15"]',
    related: str = "[]",
    extra: str = "",
) -> Path:
    path = folder / f"{article_id}.md"
    path.write_text(
        textwrap.dedent(
            f"""\
            ---
            id: {article_id}
            title: "{title}"
            audience: {audience}
            age_band: {age_band}
            topics: [test]
            sources:
              - title: "Luật Trẻ em 2016"
            related: {related}
            reviewed_at: 2026-11-20
            version: 1
            EXTRA---
            # {title}

            """
        ).replace("EXTRA", extra)
        + textwrap.dedent(body),
        encoding="utf-8",
    )
    return path


@pytest.fixture()
def small_kb(tmp_path: Path) -> Path:
    folder = tmp_path / "content"
    folder.mkdir()
    write_article(
        folder,
        "mat-khau",
        "Mật khẩu mạnh",
        """\
        Mật khẩu mạnh dài ít nhất 12 ký tự và không ai đoán được.

        ## Em nên làm gì
        1. Dùng một câu dài làm mật khẩu.
        2. Bật xác thực hai bước.
        3. Không cho ai biết mật khẩu.
        """,
        related="[nguoi-la]",
    )
    write_article(
        folder,
        "nguoi-la",
        "Người lạ kết bạn",
        """\
        Khi người lạ gửi lời mời kết bạn, em không cần đồng ý.

        ## Em nên làm gì
        1. Bấm từ chối lời mời.
        2. Kể với bố mẹ nếu người lạ nhắn tin làm em sợ.
        """,
    )
    write_article(
        folder,
        "family-link",
        "Cài Family Link cho con",
        """\
        Family Link giúp bố mẹ đặt giới hạn thời gian dùng điện thoại của con.

        ## Cách cài
        1. Tải ứng dụng Family Link trên điện thoại của bố mẹ.
        2. Liên kết tài khoản Google của con.
        """,
        audience="parent",
        age_band='["8-11"]',
    )
    return folder
