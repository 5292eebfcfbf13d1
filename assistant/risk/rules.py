"""Rules layer: a reviewed Vietnamese lexicon and patterns per category.

Patterns match the accent-folded, teen-code-expanded, lower-cased text
(``NormalizedText.folded``), so "sờ vào chỗ kín", "so vao cho kin" and
"s vào chỗ kín" all meet the same rule. Each match then goes through:

- **negation**: "không ai đánh em", "chưa bị ai sờ" drop the match;
- **hyperbole**: "chán muốn chết", "khó chết mất", "cười muốn xỉu" are not self-harm;
- **game talk**: "giết boss", "bắn chết 3 mạng" are not violence;
- **talking about**: a question, school project or news about a topic without a
  personal victim ("xâm hại tình dục là gì?") is capped at severity 1;
- **imminence**: a high-category match with "tối nay", "bây giờ", "đang",
  a plan or means, a meeting arranged, raises severity to 4.

Every rule is listed in ``RULES`` with positive and negative examples that
``tests/risk/test_rules.py`` checks.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field

from assistant.risk.base import RiskAssessment
from assistant.risk.taxonomy import HIGH_CATEGORIES, Severity
from assistant.text import NormalizedText

# People a disclosure is about: the writer, or a child the writer speaks for.
_SELF = r"(?:em|minh|tui|toi|to|tao|t|con|chau|be|mik|tớ)"
_OTHER_CHILD = (
    r"(?:con (?:toi|em|minh|gai|trai)|chau (?:toi|em|minh|gai|trai)|em (?:gai|trai|ho)|ban (?:em|minh|toi|to|tui|than)"
    r"|nho ban|hoc sinh (?:cua )?(?:toi|em)|dua nho|be nha)"
)
VICTIM = re.compile(rf"\b(?:{_SELF}|{_OTHER_CHILD})\b(?:\s+\w+){{0,3}}\s+(?:bi|da bi|vua bi|hay bi|cu bi)\b")
FIRST_PERSON = re.compile(rf"\b(?:{_SELF}|{_OTHER_CHILD})\b")

NEGATION = re.compile(
    r"\b(?:khong|chua|chang|cha|dau co|khong he|chua he|chua tung|khong bao gio|khong ai|chua ai)"
    r"(?:\s+\w+){0,3}\s*$"
)
ABOUT_TOPIC = re.compile(
    r"\b(?:la gi|nghia la|the nao la|nhu the nao|ra sao|lam sao de|lam the nao de|cach (?:phong|nhan biet|day|noi|giup|bao ve)"
    r"|dau hieu|phong tranh|phong chong|thuyet trinh|bai tap|bai thu hoach|du an|tim hieu|nghien cuu|doc bao|tren bao"
    r"|thoi su|tin tuc|xem phim|bo phim|trong phim|trong truyen|cuon sach|bai hat|luat|quy dinh|hinh phat|bi phat the nao"
    r"|co phai la|duoc coi la|co tinh la|ngoai doi|nguoi ta hay|tre em hay|hoi giup|giai thich)\b"
)
HYPOTHETICAL = re.compile(
    r"^(?:\w+\s+){0,3}neu\b(?!\s+(?:khong|ko|k)\b)(?!.*\b(?:doa|de doa|bat|ep)\b)|\bgia su\b|\bphong khi\b"
    r"|\bneu (?:co ai|co nguoi|ai do|minh bi|em bi|con bi|ban minh bi|lo bi|chau bi)\b"
)
NEWS = re.compile(
    r"\b(?:doc tin|doc bao|tren bao|xem bao|tin tuc|thoi su|xem tin|nghe noi|bao chi|bao dua tin|len bao"
    r"|vu (?:hoc sinh|be|nu sinh|chau|em|co be|nam sinh|ong|thay))\b"
)
RESOLVED = re.compile(
    r"\b(?:da duoc (?:go|xu ly|giai quyet|dieu tri|can thiep|ho tro)|bi ky luat|da bi bat|da dieu tri|da qua roi"
    r"|gio (?:em|con|chau|minh|chau no|no) (?:on|on roi|on dinh|khong sao|an toan))\b"
)
HYPERBOLE_BEFORE = re.compile(
    r"\b(?:chan|kho|met|doi|nong|lanh|cuoi|so|buon ngu|ngai|xau ho|que|vui|suong|dep|ngon|dau bung|ban|ghen|tuc|buc)"
    r"(?:\s+\w+){0,2}\s*$"
)
HYPERBOLE_PHRASES = re.compile(
    r"\b(?:chan muon chet|kho chet|met chet|doi chet|nong chet|cuoi chet|cuoi muon xiu|met muon xiu|so muon chet"
    r"|chet mat thoi|chet chac|chet voi|chet cuoi|toang|muon do[n]? tho|mac co chet|chet di duoc|chet luon a|xiu ngang"
    r"|giet em mat|giet chet em mat|giet tui mat|giet minh mat|giet toi mat|bai nay giet|me giet|bo giet|ma biet thi)\b"
)
GAME_CONTEXT = re.compile(
    r"\b(?:game|boss|rank|free fire|ff|lien quan|lq|pubg|minecraft|roblox|genshin|valorant|lol|mang|kill|clan|team|skin"
    r"|map|level|lv|trong game|headshot|ban sung|zombie|quai|npc|dau truong|solo|combo|skill|tuong|trận|match|stream)\b"
)

IMMINENT = re.compile(
    r"\b(?:toi nay|dem nay|bay gio|ngay bay gio|ngay luc nay|luc nay|dang o|dang (?:bi|den|doi|dua|cho|dung|o ngoai)"
    r"|sap (?:den|toi|bi|gap|di)|chieu nay|sang mai|mai (?:gap|di|den)|hom nay (?:gap|di|den)|lat nua|ti nua|ngay mai"
    r"|o ngoai cua|ngoai cong|dang theo|dang cho|hen (?:gap|em|minh)|gap (?:nhau|rieng|truc tiep)|qua don|den don|ra gap"
    r"|tren xe|dua (?:em|minh|toi) di|dem (?:em|minh) di|khong cho (?:em|minh) ve|nhot (?:em|minh)|cuu (?:em|minh|voi))\b"
)
SELF_HARM_PLAN = re.compile(
    r"\b(?:thuoc ngu|uong (?:het|ca) (?:vi|lo|hop) thuoc|uong thuoc (?:chuot|tru sau)|thuoc chuot|nhay (?:cau|lau|song|xuong)"
    r"|treo co|soi day|lam xong thu|thu tuyet menh|di xa mai mai|ket thuc tat ca|tam biet moi nguoi|lan cuoi"
    r"|da chuan bi|len ke hoach|chon ngay|toi nay se|dem nay se|khong con o day nua)\b"
)


@dataclass(frozen=True)
class Rule:
    id: str
    category: str
    severity: int
    pattern: re.Pattern[str]
    reason_vi: str
    strong: bool = False
    """A strong rule escalates on its own in the ensemble; a weak one needs the
    model's agreement. Strong = no false escalation on the train split."""
    positives: tuple[str, ...] = field(default=(), compare=False)
    negatives: tuple[str, ...] = field(default=(), compare=False)


def _r(p: str) -> re.Pattern[str]:
    return re.compile(p)


RULES: tuple[Rule, ...] = (
    # -- sexual abuse ---------------------------------------------------------
    Rule(
        "sa.touch",
        "sexual_abuse",
        3,
        _r(
            r"\b(?:so|so mo|ro|ro ram|cham|bop|nan|hon|liem|xoa|vuot|mo)\s+(?:\w+\s+){0,4}"
            r"(?:cho kin|vung kin|bo phan kin|cho nhay cam|nguc|ti|vu|mong|dit|quan lot|quan chip|chim|dui|ben trong)\b"
        ),
        "chạm vào vùng kín",
        positives=("chú hàng xóm sờ vào chỗ kín của em", "ong ay so vao nguc e", "anh họ hay mò vào quần lót em"),
        negatives=("vùng kín là gì vậy", "em bị muỗi đốt ở đùi"),
    ),
    Rule(
        "sa.undress",
        "sexual_abuse",
        3,
        _r(r"\b(?:bat|ep|doi|du|keu|ra lenh)\s+(?:\w+\s+){0,3}(?:coi|cuoi|thao) (?:do|quan|ao|het)\b(?!\s+(?:khoac|mua|ngoai|len|am))"),
        "bị ép cởi đồ",
        strong=True,
        positives=("ổng bắt em cởi đồ ra", "chu do ep e coi quan"),
        negatives=("mẹ bảo em cởi áo khoác ra phơi",),
    ),
    Rule(
        "sa.rape",
        "sexual_abuse",
        3,
        _r(
            r"\b(?:hiep dam|cuong hiep|cuong buc|xam hai|lam dung tinh duc|quan he voi (?:em|minh|con|chau)"
            r"|ep (?:em |minh |con |chau )?quan he|lam chuyen (?:do|xau|bay)|dam o|au dam|lam nhuc)\b"
        ),
        "mô tả xâm hại tình dục",
        positives=("em bị anh họ làm chuyện đó", "con toi bi xam hai", "e bị hiếp dâm"),
        negatives=("xâm hại tình dục là gì", "thuyết trình về phòng chống xâm hại"),
    ),
    Rule(
        "sa.lie_down",
        "sexual_abuse",
        3,
        _r(
            r"\b(?:chu|bac|duong|cha duong|bo duong|cau|ong|anh ho|thay|ong ay|ong ta|nguoi do|hang xom)\s+(?:\w+\s+){0,4}"
            r"(?:chui vao|leo len) (?:giuong|man|chan)\b|\bngu chung (?:roi|va) (?:so|ro)"
        ),
        "người lớn lên giường của trẻ",
        strong=True,
        positives=("đêm nào dượng cũng chui vào giường em",),
        negatives=("em gái chui vào chăn em vì sợ sấm",),
    ),
    # -- grooming -------------------------------------------------------------
    Rule(
        "gr.photo_request",
        "grooming",
        3,
        _r(
            r"\b(?:doi|xin|bao|bat|ep|nhan|muon)\s+(?:\w+\s+){0,3}(?:gui|chup|quay|cho xem|show)\s+(?:\w+\s+){0,3}"
            r"(?:anh|hinh|clip|video|cam)\s*(?:nong|nude|khoa than|ho|sexy|mac do (?:boi|lot|ngu)|ko (?:mac )?ao"
            r"|khong (?:mac )?(?:ao|do|quan)|than the|vung kin|cho kin|nguc|rieng tu|nhay cam|18)"
        ),
        "bị đòi ảnh nhạy cảm",
        strong=True,
        positives=("anh ấy đòi em gửi ảnh không mặc áo", "ng do nhan e chup anh mac do boi gui", "nó xin e gửi ảnh nóng"),
        negatives=("bạn em xin gửi ảnh chụp lớp", "làm sao chụp ảnh đẹp"),
    ),
    Rule(
        "gr.nude",
        "grooming",
        3,
        _r(r"\b(?:send nude|gui nude|xin nude|doi nude|nude cho|call sex|goi sex|video (?:call|goi) (?:khoa than|coi do|coi ao|coi quan)|cam sex)\b"),
        "bị đòi ảnh khỏa thân",
        strong=True,
        positives=("nó bảo send nude", "ổng đòi video call cởi đồ"),
        negatives=("nude là màu gì trong son môi",),
    ),
    Rule(
        "gr.secret_meeting",
        "grooming",
        3,
        _r(
            r"\b(?:dung|khong duoc|cam)\s+(?:\w+\s+){0,2}(?:noi|ke|cho)\s+(?:\w+\s+){0,2}(?:bo me|ba me|bo|me|ai|nguoi lon|thay co)"
            r"(?:\s+\w+){0,8}\s+(?:gap|hen|di choi|qua nha|ra quan|khach san|nha nghi)\b"
            r"|\b(?:hen|ru|doi)\s+(?:em|minh|con)\s+(?:\w+\s+){0,3}(?:ra|di|den|toi)\s+(?:\w+\s+){0,2}"
            r"(?:khach san|nha nghi|phong tro|nha (?:anh|chu|ong) ay|cho vang|mot minh)\b"
        ),
        "hẹn gặp riêng kèm giữ bí mật",
        positives=("anh ấy dặn đừng nói với bố mẹ rồi hẹn gặp em cuối tuần", "chu do ru em den nha nghi"),
        negatives=("bạn rủ em đi chơi công viên",),
    ),
    Rule(
        "gr.adult_romance",
        "grooming",
        3,
        _r(
            r"\b(?:chu|bac|ong|anh|thay|nguoi lon|nguoi)\s+(?:\w+\s+){0,4}(?:\d\d|hai muoi|ba muoi|bon muoi)\s*(?:tuoi|t)\b"
            r"(?:\s+\w+){0,10}\s+(?:yeu|hon|nguoi yeu|lam ban gai|lam vo|ngu|tinh cam|so|cham|gap rieng)\b"
        ),
        "người lớn tỏ tình với trẻ",
        positives=("anh 25 tuổi nói yêu em và muốn gặp riêng",),
        negatives=("anh trai em 25 tuổi",),
    ),
    # -- sextortion -----------------------------------------------------------
    Rule(
        "sx.threat_publish",
        "sextortion",
        3,
        _r(
            r"\b(?:doa|de doa|tong tien|threat|neu khong|ko thi|khong thi|ko gui|khong gui|khong chuyen)\s+(?:\w+\s+){0,8}"
            r"(?:tung|dang|phat tan|gui cho|share|post|leak|up)\s+(?:\w+\s+){0,4}(?:anh|hinh|clip|video)"
        ),
        "bị dọa tung ảnh",
        positives=("nó dọa tung ảnh của em lên mạng", "neu khong chuyen tien no se dang clip cua e"),
        negatives=("tống tiền là tội gì",),
    ),
    Rule(
        "sx.pay_or_more",
        "sextortion",
        3,
        _r(
            r"\b(?:anh|hinh|clip|video)\s+(?:\w+\s+){0,6}(?:doi|bat|ep)\s+(?:\w+\s+){0,3}(?:chuyen|gui|nap)\s+"
            r"(?:\w+\s+){0,2}(?:tien|them anh|them clip|the cao|\d+\s*(?:k|nghin|trieu|tr))"
        ),
        "bị ép trả tiền hoặc gửi thêm ảnh",
        strong=True,
        positives=("có ảnh của em rồi giờ nó đòi chuyển tiền",),
        negatives=("em muốn gửi ảnh cho ông bà",),
    ),
    # -- intimate image abuse -------------------------------------------------
    Rule(
        "ii.shared",
        "intimate_image_abuse",
        3,
        _r(
            r"\b(?:tung|phat tan|dang|share|gui|lan truyen|leak|lo|up)\s+(?:\w+\s+){0,4}"
            r"(?:anh|hinh|clip|video)\s+(?:\w+\s+){0,2}(?:nong|nude|khoa than|nhay cam|tam|thay do|rieng tu|18|sex|cua em|cua minh|cua con|cua chau)"
            r"(?:\s+\w+){0,8}\s+(?:len|vao|cho|trong)\s+(?:\w+\s+){0,2}(?:mang|nhom|group|lop|face|fb|facebook|tiktok|zalo|tele|telegram|ca truong)\b"
            r"|\b(?:anh|hinh|clip|video)\s+(?:nong|nude|khoa than|nhay cam|tam|thay do|rieng tu|18|sex)\s+(?:\w+\s+){0,3}"
            r"(?:bi |da bi )?(?:dang|tung|phat tan|lan truyen|leak|chia se)\s+(?:len|khap|tren|vao)\b"
        ),
        "ảnh nhạy cảm bị phát tán",
        positives=("bạn trai cũ tung ảnh nóng của em lên nhóm lớp", "clip thay do cua chau bi dang len mang"),
        negatives=("cách xóa ảnh bị phát tán trên mạng là gì",),
    ),
    Rule(
        "ii.hidden_camera",
        "intimate_image_abuse",
        3,
        _r(r"\b(?:camera|dien thoai|quay len|quay trom|chup trom|quay len)\s+(?:\w+\s+){0,5}(?:nha tam|phong tam|thay do|toilet|nha ve sinh|wc)\b|\b(?:quay trom|chup trom|quay len)\b"),
        "bị quay lén",
        positives=("có người đặt điện thoại quay lén trong nhà tắm", "em bi quay len luc thay do"),
        negatives=("camera an ninh ở cổng trường",),
    ),
    Rule(
        "ii.deepfake",
        "intimate_image_abuse",
        3,
        _r(r"\b(?:ghep|deepfake|fake|chinh|ai)\s+(?:\w+\s+){0,3}(?:mat|anh|hinh)\s+(?:\w+\s+){0,4}(?:khoa than|nude|nong|sex|18|porn|do lot)"),
        "ảnh giả nhạy cảm",
        strong=True,
        positives=("tụi nó ghép mặt em vào ảnh khỏa thân",),
        negatives=("app ghép mặt vào nhân vật hoạt hình",),
    ),
    # -- self harm ------------------------------------------------------------
    Rule(
        "sh.suicidal",
        "self_harm",
        3,
        _r(
            r"\b(?:muon chet|mun chet|tu tu|tu sat|ket lieu|khong muon song|khong mun song|het muon song|chan song|song lam gi|chet cho xong"
            r"|chet di cho roi|bien mat khoi (?:the gioi|doi)|khong muon ton tai|muon ngu mai|de chet|chet quach|tu van)\b"
        ),
        "ý nghĩ tự tử",
        positives=("em không muốn sống nữa", "e mun chet", "chắc mình tự tử thôi"),
        negatives=("chán muốn chết", "nóng chết đi được", "tự tử là gì"),
    ),
    Rule(
        "sh.self_wish",
        "self_harm",
        3,
        _r(
            r"^(?:\w+\s+){0,2}?(?:em|minh|tui|toi|to|tao|t|con)\s+(?:(?!khong\b|ko\b|chua\b|chang\b)\w+\s+){0,2}?"
            r"(?:muon chet|mun chet|muon tu tu"
            r"|mun tu tu|khong muon song|khong mun song|het muon song|khong muon ton tai|muon bien mat"
            r"|muon ket thuc cuoc doi|muon ket thuc tat ca)\b"
        ),
        "trẻ nói chính mình muốn chết",
        strong=True,
        positives=("e mun chet lam r", "em thật sự muốn chết", "tui không muốn sống nữa"),
        negatives=("chán muốn chết", "học sinh nói em muốn chết thì sao", "em không muốn chết đâu, chỉ mệt"),
    ),
    Rule(
        "sh.injury",
        "self_harm",
        3,
        _r(r"\b(?:rach|cat|cao|dam|tu dam|tu cat|tu danh|dot)\s+(?:\w+\s+){0,2}(?:tay|co tay|dui|chan|ban than|minh|nguoi)\b|\btu hai\b|\btu lam dau\b"),
        "tự làm đau bản thân",
        positives=("em hay rạch tay mỗi khi buồn", "t tu cat co tay"),
        negatives=("em bị đứt tay khi gọt táo",),
    ),
    # -- violence -------------------------------------------------------------
    Rule(
        "vi.beaten",
        "violence",
        3,
        _r(
            r"\b(?:bi|hay bi|cu bi|suot ngay bi)\s+(?:(?!muoi|kien|ong\b)\w+\s+){0,3}(?:danh|dap|tat|dam|da|bop co|siet co|chich|troi|xich|nhot|bo doi)\b"
            r"|\b(?:hay|thuong|thuong xuyen|suot ngay|ngay nao cung|cu|lai)\s+(?:danh|dap|tat|bop co|siet co|dot)\s+(?:em|minh|tui|con|chau)\b"
            r"|\b(?:danh|quat|dap)\s+(?:em|minh|tui|con|chau)\s+bang\s+(?:roi|day|that lung|gay|choi|mac ao|dep)\b"
            r"|\b(?:danh|dap|tat|da|bop co|siet co)\s+(?:em|minh|con|chau|tui)\s+(?:\w+\s+){0,4}(?:chay mau|bam tim|sung|gay|ngat|bat tinh|ran|day|thuong xuyen)"
            r"|\bbam tim\b|\bchay mau\b"
        ),
        "bị đánh, bạo lực",
        positives=("em bị bố đánh bầm tím", "dượng hay bóp cổ em", "ba đánh em bằng roi"),
        negatives=("em đánh cầu lông với bạn", "bị muỗi đốt"),
    ),
    Rule(
        "vi.threat",
        "violence",
        3,
        _r(r"\b(?:doa|de doa|noi se|bao se)\s+(?:\w+\s+){0,3}(?:giet|danh|chem|dam|xu|cho ra bai|dot nha|an thit)\s+(?:em|minh|tui|con|chau|ca nha)"),
        "bị đe dọa bạo lực",
        strong=True,
        positives=("tụi nó dọa sẽ đánh em sau giờ học", "nó đe dọa giết em"),
        negatives=("mẹ dọa sẽ cắt wifi",),
    ),
    Rule(
        "vi.confined",
        "violence",
        3,
        _r(r"\b(?:nhot|khoa)\s+(?:em|minh|con|chau|tui)\s+(?:\w+\s+){0,3}(?:trong|ngoai|o)\b|\bbo doi\b|\bkhong cho (?:an|ve nha|di hoc)\b"),
        "bị nhốt, bỏ đói",
        strong=True,
        positives=("dì nhốt em trong phòng cả ngày", "bị bỏ đói 2 ngày", "mẹ kế nhốt em trong nhà kho"),
        negatives=("em khóa cửa phòng để học bài",),
    ),
    # -- trafficking ----------------------------------------------------------
    Rule(
        "tr.job_lure",
        "trafficking",
        3,
        _r(
            r"\b(?:viec nhe luong cao|luong cao viec nhe|sang (?:campuchia|cam|trung quoc|tq|lao|myanmar|malaysia) lam"
            r"|dua (?:em|minh|con|chau) (?:sang|qua) (?:bien gioi|campuchia|trung quoc|nuoc ngoai)|bi ban (?:sang|qua|cho)"
            r"|giu (?:giay to|can cuoc|ho chieu)|bat lam viec khong luong|khong cho lien lac (?:voi )?gia dinh|ep (?:di )?tiep khach"
            r"|ban (?:em|minh|con|chau) (?:cho|sang|qua))\b"
        ),
        "dấu hiệu mua bán người",
        positives=("có người rủ em sang Campuchia làm việc nhẹ lương cao", "họ giữ căn cước không cho em liên lạc gia đình"),
        negatives=("buôn bán người là gì",),
    ),
    # -- moderate categories ----------------------------------------------------
    Rule(
        "cb.bullied",
        "cyberbullying",
        2,
        _r(
            r"\b(?:bi|hay bi|cu bi)\s+(?:\w+\s+){0,3}(?:che gieu|che cuoi|noi xau|chui|cho ra khoi nhom|kick khoi nhom|tay chay"
            r"|lap nhom noi xau|body shame|dang anh che|lam meme|gia mao|tao acc gia|boc phot|ha nhuc|bat nat|co lap|spam)"
            r"|\b(?:ca lop|tui no|may dua|nhom do)\s+(?:\w+\s+){0,4}(?:che|chui|noi xau|co lap|tay chay|cuoi nhao|dang anh)"
        ),
        "bị bắt nạt trên mạng",
        positives=("em bị cả lớp chê cười trên nhóm chat", "tụi nó lập nhóm nói xấu em"),
        negatives=("bắt nạt trên mạng là gì",),
    ),
    Rule(
        "sc.scam",
        "scam",
        2,
        _r(
            r"\b(?:bi|da bi)\s+(?:\w+\s+){0,2}(?:lua|lua dao|scam|hack|chiem|mat) (?:\w+\s+){0,2}"
            r"|\b(?:mat|bi hack|bi chiem|bi lay)\s+(?:acc|tai khoan|nick|facebook|fb|zalo)\b"
            r"|\b(?:cho|gui|dua)\s+(?:\w+\s+){0,2}(?:ma otp|otp|ma xac nhan|mat khau)\b"
        ),
        "bị lừa đảo hoặc mất tài khoản",
        positives=("em bị lừa mất 200 nghìn khi mua kim cương", "bị hack acc fb rồi", "em lỡ gửi mã OTP cho người lạ"),
        negatives=("làm sao nhận biết lừa đảo",),
    ),
    Rule(
        "hc.exposure",
        "harmful_content",
        2,
        _r(
            r"\b(?:xem|thay|coi|luot|bi gui|gui|share)\s+(?:\w+\s+){0,4}(?:phim sex|clip sex|phim nguoi lon|anh khieu dam|web sex|video kinh di"
            r"|clip giet nguoi|chat dau|mau me|thu thach nguy hiem|challenge nguy hiem|porn|18\+)"
        ),
        "tiếp xúc nội dung độc hại",
        positives=("em lỡ xem clip giết người trên tiktok", "bạn gửi em link phim sex"),
        negatives=("nội dung độc hại là gì",),
    ),
    Rule(
        "pv.leak",
        "privacy",
        2,
        _r(
            r"\b(?:lo|bi lo|dang|bi dang|biet)\s+(?:\w+\s+){0,3}(?:dia chi nha|so dien thoai|sdt|ten truong|vi tri|cccd|can cuoc)"
            r"(?:\s+\w+){0,4}\s*(?:cua em|cua minh|cua con|len mang|roi)?"
        ),
        "lộ thông tin cá nhân",
        positives=("người lạ biết địa chỉ nhà em qua tiktok", "bị đăng số điện thoại của em lên mạng"),
        negatives=("không nên đăng địa chỉ nhà lên mạng đúng không",),
    ),
    Rule(
        "eu.overuse",
        "excessive_use",
        2,
        _r(
            r"\b(?:choi|luot|xem|cay)\s+(?:\w+\s+){0,3}(?:\d+|muoi|ca ngay|ca dem|suot dem|thau dem|xuyen dem)\s*(?:tieng|gio|h)?\s*"
            r"(?:\w+\s+){0,3}(?:moi ngay|mot ngay|khong ngu|bo hoc|bo an)|\bnghien (?:game|tiktok|dien thoai|mang)\b"
        ),
        "sử dụng quá mức",
        positives=("con tôi chơi game 10 tiếng mỗi ngày", "em nghiện tiktok"),
        negatives=("em chơi game 30 phút sau khi học",),
    ),
)


@dataclass(frozen=True)
class RuleHit:
    rule: Rule
    severity: int
    reason: str


def _window_before(text: str, start: int, words: int = 4) -> str:
    before = text[:start].split()
    return " ".join(before[-words:])


class RulesRiskClassifier:
    """Lexicon and patterns per category, with negation, hyperbole and imminence handling."""

    model_version = "rules-1"

    def __init__(self, rules: Sequence[Rule] = RULES) -> None:
        self.rules = tuple(rules)

    def hits(self, folded: str) -> list[RuleHit]:
        text = " ".join(folded.lower().split())
        about_topic = (
            (bool(ABOUT_TOPIC.search(text)) and not VICTIM.search(text))
            or bool(HYPOTHETICAL.search(text))
            or bool(NEWS.search(text))
            or bool(RESOLVED.search(text))
        )
        hyperbole = bool(HYPERBOLE_PHRASES.search(text))
        game = bool(GAME_CONTEXT.search(text))
        imminent = bool(IMMINENT.search(text))
        plan = bool(SELF_HARM_PLAN.search(text))
        out: list[RuleHit] = []
        for rule in self.rules:
            match = rule.pattern.search(text)
            if not match:
                continue
            before = _window_before(text, match.start())
            if NEGATION.search(before + " "):
                continue
            death_word = bool(re.search(r"\b(?:chet|xiu)\b", match.group(0)))
            if (
                rule.category == "self_harm"
                and death_word
                and (hyperbole or HYPERBOLE_BEFORE.search(before + " "))
                and not plan
            ):
                continue
            if rule.category == "violence" and game:
                continue
            severity = rule.severity
            reason = rule.reason_vi
            if about_topic:
                severity = min(severity, int(Severity.low))
                reason += " (hỏi về chủ đề, không phải kể chuyện)"
            elif rule.category in HIGH_CATEGORIES and (
                imminent or (rule.category == "self_harm" and plan)
            ):
                severity = int(Severity.imminent)
                reason += " + nguy hiểm ngay"
            out.append(RuleHit(rule, severity, f"{reason} [{rule.id}]"))
        if plan and not any(h.rule.category == "self_harm" for h in out) and not about_topic:
            sh = next(r for r in self.rules if r.id == "sh.suicidal")
            out.append(RuleHit(sh, int(Severity.imminent), "kế hoạch hoặc phương tiện tự hại [sh.plan]"))
        return out

    def assess(
        self, message: NormalizedText, history: Sequence[NormalizedText] = ()  # noqa: ARG002 - one message alone
    ) -> RiskAssessment:
        return self.from_hits(self.hits(message.folded))

    def features(self, folded: str, hits: Sequence[RuleHit] | None = None) -> list[float]:
        """What the rules see in one message, as numbers for the trained stacker.

        Highest severity of strong and of weak rule hits, the number of hits,
        and the context cues the rules use (asking about a topic, hypothetical,
        news, resolved, hyperbole, game talk, imminence, a plan, a victim
        phrase, first person, a question mark, length).
        """
        text = " ".join(folded.lower().split())
        hits = self.hits(folded) if hits is None else hits
        strong = max((h.severity for h in hits if h.rule.strong), default=0)
        weak = max((h.severity for h in hits if not h.rule.strong), default=0)
        cues = (ABOUT_TOPIC, HYPOTHETICAL, NEWS, RESOLVED, HYPERBOLE_PHRASES, GAME_CONTEXT, IMMINENT,
                SELF_HARM_PLAN, VICTIM, FIRST_PERSON)
        return [
            strong / 4,
            weak / 4,
            min(len(hits), 4) / 4,
            *(float(bool(cue.search(text))) for cue in cues),
            float("?" in text),
            min(len(text.split()), 60) / 60,
        ]

    def from_hits(self, hits: Sequence[RuleHit]) -> RiskAssessment:
        if not hits:
            return RiskAssessment.none(self.model_version)
        scores: dict[str, float] = {}
        for hit in hits:
            scores[hit.rule.category] = max(scores.get(hit.rule.category, 0.0), hit.severity / 4)
        best = max(hits, key=lambda h: (h.severity, HIGH_CATEGORIES.__contains__(h.rule.category)))
        return RiskAssessment(
            severity=best.severity,
            primary=best.rule.category,
            categories=scores,
            signals=[h.reason for h in hits],
            model_version=self.model_version,
        )
