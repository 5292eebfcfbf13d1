from __future__ import annotations

import base64
import hashlib
import hmac
import time

import pytest

from escalation.webhooks import WebhookVerificationError, headers_for, sign, verify

pytestmark = pytest.mark.unit

OLD = "whsec_" + base64.b64encode(b"old-secret-old-secret-old-secret").decode()
NEW = "whsec_" + base64.b64encode(b"new-secret-new-secret-new-secret").decode()
BODY = b'{"type":"tip_report.approved","data":{}}'


def test_signature_is_standard_webhooks_hmac_over_id_timestamp_body() -> None:
    expected = base64.b64encode(
        hmac.new(b"old-secret-old-secret-old-secret", b"msg_1.1700000000." + BODY, hashlib.sha256).digest()
    ).decode()
    assert sign(OLD, "msg_1", 1700000000, BODY) == "v1," + expected


def test_verify_accepts_a_valid_delivery_and_returns_its_id() -> None:
    headers = headers_for([OLD], "01J.v2", BODY)
    assert verify(BODY, headers, [OLD]) == "01J.v2"


def test_key_rotation_sends_several_signatures_and_either_key_verifies() -> None:
    headers = headers_for([NEW, OLD], "id", BODY)
    assert len(headers["webhook-signature"].split()) == 2
    assert verify(BODY, headers, [OLD]) == "id"
    assert verify(BODY, headers, [NEW]) == "id"


@pytest.mark.parametrize(
    "tamper",
    ["body", "id", "timestamp", "secret", "missing", "stale", "garbage"],
)
def test_tampered_or_stale_deliveries_are_rejected(tamper: str) -> None:
    headers = headers_for([OLD], "id", BODY)
    body, secrets = BODY, [OLD]
    if tamper == "body":
        body = BODY.replace(b"{}", b'{"x":1}')
    elif tamper == "id":
        headers["webhook-id"] = "other"
    elif tamper == "timestamp":
        headers["webhook-timestamp"] = str(int(headers["webhook-timestamp"]) + 1)
    elif tamper == "secret":
        secrets = [NEW]
    elif tamper == "missing":
        del headers["webhook-signature"]
    elif tamper == "stale":
        headers = headers_for([OLD], "id", BODY, timestamp=int(time.time()) - 3600)
    else:
        headers["webhook-signature"] = "v1,AAAA v2,zzz nonsense"
    with pytest.raises(WebhookVerificationError):
        verify(body, headers, secrets)


def test_raw_secrets_without_prefix_work_too() -> None:
    headers = headers_for(["plain-secret"], "id", BODY)
    assert verify(BODY, headers, ["plain-secret"]) == "id"
