"""Pseudonymous user keys: platform user ids are never stored, only a keyed hash."""

from __future__ import annotations

import hashlib
import hmac


def pseudonymize(key: str, channel: str, external_user_id: str) -> str:
    """HMAC-SHA256 of ``channel:external_user_id`` under ``key``, hex (64 chars).

    The same user on the same channel always maps to the same pseudonym; without
    the key the pseudonym cannot be linked back to the platform id.
    """
    if not external_user_id:
        raise ValueError("external_user_id must not be empty")
    message = f"{channel}:{external_user_id}".encode()
    return hmac.new(key.encode(), message, hashlib.sha256).hexdigest()
