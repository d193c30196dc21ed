"""The job types interlock ships: housekeeping on a schedule, and one for operators to try."""

from __future__ import annotations

from typing import Any

import structlog

from interlock.server.audit.service import verify
from interlock.server.auth import service as auth
from interlock.server.db.base import utcnow
from interlock.server.jobs.registry import Backoff, JobContext, job

log = structlog.get_logger("interlock.jobs")


@job("interlock.echo", enqueueable=True, retries=3, backoff=Backoff(base=1.0, cap=30.0))
def echo(ctx: JobContext, message: str = "", fail_attempts: int = 0) -> dict[str, Any]:
    """Return the message: checks that jobs run end to end.

    With `fail_attempts` > 0, the first that many attempts fail, to watch retries happen.
    """
    if ctx.attempt <= fail_attempts:
        raise RuntimeError(f"failing attempt {ctx.attempt} of {fail_attempts}, as asked")
    return {"message": message, "attempt": ctx.attempt}


@job("interlock.sweep_login_sessions", cron="*/15 * * * *", enqueueable=True, retries=2)
def sweep_login_sessions(ctx: JobContext) -> dict[str, Any]:
    """Delete expired UI login sessions.

    Idempotent by its condition: a second run finds nothing expired left to delete. Not
    audited: nobody did anything, the sessions had already stopped working.
    """
    with ctx.db.write_session() as session:
        deleted = auth.sweep_expired_sessions(session, utcnow())
    return {"deleted": deleted}


@job("interlock.verify_audit_chain", cron="7 * * * *", enqueueable=True)
def verify_audit_chain(ctx: JobContext) -> dict[str, Any]:
    """Walk the audit chain, as `interlock audit verify` does, and log an error if broken.

    The job succeeds either way (the check ran); its result says what it found.
    """
    with ctx.db.read_session() as session:
        result = verify(session)
    if not result.ok:
        log.error("audit chain broken", problem=result.problem, seq=result.seq)
    return {
        "ok": result.ok,
        "checked": result.checked,
        "problem": result.problem,
        "seq": result.seq,
        "head_hash": result.head_hash,
    }
