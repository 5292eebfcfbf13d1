"""Extract Đồng Nai's wards and communes (province code 75) into ``dong_nai_wards.json``.

The list comes from the ``vietnam-provinces`` package, which ships the
administrative divisions in force after the 2025 reorganisation (34
provinces). Run it again when that package is updated, and review the diff:

    .venv/bin/python escalation/data/make_wards.py
"""

from __future__ import annotations

import json
from importlib.metadata import version
from pathlib import Path

from vietnam_provinces import Province, Ward

PROVINCE_CODE = 75
OUT = Path(__file__).resolve().parent / "dong_nai_wards.json"


def build() -> dict[str, object]:
    province = Province.from_code(PROVINCE_CODE)  # type: ignore[arg-type]
    wards = sorted(
        (w for w in Ward.iter_all() if int(w.province_code) == PROVINCE_CODE), key=lambda w: int(w.code)
    )
    return {
        "source": f"vietnam-provinces=={version('vietnam-provinces')}",
        "province": {"code": PROVINCE_CODE, "name": province.name},
        "wards": [
            {
                "code": int(w.code),
                "name": w.name,
                "type": w.division_type.value,
                "codename": w.codename,
            }
            for w in wards
        ],
    }


def main() -> None:
    data = build()
    OUT.write_text(json.dumps(data, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    print(f"wrote {len(data['wards'])} wards to {OUT}")  # type: ignore[arg-type]


if __name__ == "__main__":
    main()
