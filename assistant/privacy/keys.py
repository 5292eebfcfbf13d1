"""Key rotation: re-encrypt every encrypted column with the first data key.

Put the new key FIRST in ``ASSISTANT_SECURITY__DATA_KEYS`` (old keys after it),
run ``python -m assistant keys rotate``, then drop the old keys. Rows already
under the first key are left alone, so an interrupted rotation can be re-run.
"""

from __future__ import annotations

import sqlalchemy as sa

from assistant.crypto import ENCRYPTED_COLUMNS
from assistant.db import Database


def rotate_all(db: Database, batch: int = 500) -> dict[str, int]:
    """Rows re-encrypted per ``table.column`` (one transaction per column)."""
    keyring = db.keyring
    counts: dict[str, int] = {}
    for table, keys, column in ENCRYPTED_COLUMNS:
        pk = ", ".join(keys)
        where = " AND ".join(f"{k} = :k{i}" for i, k in enumerate(keys))
        stmt = sa.text(f"UPDATE {table} SET {column} = :v WHERE {where}")
        done = 0
        with db.engine.begin() as conn:
            result = conn.execute(sa.text(f"SELECT {pk}, {column} FROM {table} WHERE {column} IS NOT NULL"))
            while rows := result.fetchmany(batch):
                updates = []
                for row in rows:
                    token = row[-1]
                    if keyring.is_primary(token):
                        continue
                    params = {f"k{i}": row[i] for i in range(len(keys))}
                    updates.append({"v": keyring.rotate(token), **params})
                if updates:
                    conn.execute(stmt, updates)
                    done += len(updates)
        counts[f"{table}.{column}"] = done
    return counts
