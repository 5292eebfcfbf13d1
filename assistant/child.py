"""Heavy one-off work (training, exports, ingest) in a child Python process.

A serving process keeps what it allocates until it restarts; work whose memory is
only needed once (training a model, building the index, exporting an embedder) runs
in a child, and the service loads the result.
"""

from __future__ import annotations

import subprocess


def child_detail(done: subprocess.CompletedProcess[str]) -> str:
    """The child's last words: the end of its stderr (or stdout), for the operator."""
    return (done.stderr or done.stdout).strip()[-1500:]


def run_child(
    command: list[str], what: str, error: type[Exception], timeout: float
) -> subprocess.CompletedProcess[str]:
    """Run ``command``; a timeout or a non-zero exit raises ``error`` naming ``what``."""
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout)  # noqa: S603 - callers' fixed code
    except subprocess.TimeoutExpired as exc:
        raise error(f"{what} took over {timeout:.0f} s") from exc
    if done.returncode != 0:
        raise error(f"{what} failed (exit {done.returncode}): {child_detail(done)}")
    return done
