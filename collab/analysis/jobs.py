"""Runs one analysis job in this process: the analysis on a thread of its own, its progress
written to the database twice a second (the job's heartbeat), a cancellation read back.

Only worker processes run jobs (``collab analyses run``, ``collab analyses worker``): an
analysis holds a CPU for seconds to minutes, which the server's event loop and tile threads
never do.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Sequence
from pathlib import Path

from collab.analysis.base import Analysis, open_slide_view
from collab.analysis.registry import UnknownAnalysis, load
from collab.analysis.result import Result
from collab.domain import User
from collab.store.analyses import HERE, Job
from collab.store.database import Database

BEAT_S = 0.5  # how often progress is written, and a cancellation looked for


class Cancelled(Exception):
    """Someone cancelled the job; raised inside the analysis at its next progress report."""


async def queue_for_new_slide(
    db: Database,
    slide_id: str,
    case_id: str,
    names: Sequence[str],
    *,
    user: User | None = None,
    client: str | None = None,
) -> list[int]:
    """Queue the analyses a newly registered slide gets (``Settings.analyse_on_registration``);
    the job ids. A worker process runs them (collab.analysis.workers)."""
    job_ids = []
    for name in names:
        job_id = await db.analyses.enqueue(slide_id, name, requested_by=None)
        await db.audit.record(
            "analysis requested",
            user=user,
            username=None if user else "(on registration)",
            client=client,
            case_id=case_id,
            slide_id=slide_id,
            detail=f"{name}, job {job_id}, on registration",
        )
        job_ids.append(job_id)
    return job_ids


async def run_job(
    db: Database, job: Job, *, on_progress: Callable[[float], None] | None = None
) -> int | None:
    """Run a claimed job to its end; returns the result id (None: failed or cancelled, as the
    job's row and the audit log say)."""
    slide = await db.catalog.slide(job.slide_id)
    try:
        if slide is None:
            raise LookupError(f"slide {job.slide_id} is no longer registered")
        analysis = load(job.analysis)
    except (LookupError, UnknownAnalysis) as exc:
        await _failed(db, job, str(exc))
        return None
    fraction = [0.0]
    cancel = threading.Event()

    def report(done: float) -> None:
        fraction[0] = done
        if cancel.is_set():
            raise Cancelled

    work = asyncio.ensure_future(asyncio.to_thread(_analyse, analysis, Path(slide.path), report))
    while not work.done():
        await asyncio.wait({work}, timeout=BEAT_S)
        if await db.analyses.beat(job.id, fraction[0]):
            cancel.set()
        if on_progress is not None:
            on_progress(fraction[0])
    try:
        result = work.result()
    except Cancelled:
        await db.analyses.end(job.id, "cancelled")
        await db.audit.record("analysis cancelled", slide_id=job.slide_id, detail=_detail(job))
        return None
    except Exception as exc:  # the analysis's own failure, told to whoever asked
        await _failed(db, job, f"{type(exc).__name__}: {exc}")
        return None
    result_id = await db.analyses.add_result(job.slide_id, result.to_json(), source=HERE, job_id=job.id)
    await db.analyses.end(job.id, "done", result_id=result_id)
    await db.audit.record(
        "analysis finished", slide_id=job.slide_id, detail=f"{_detail(job)}; result {result_id}"
    )
    return result_id


def _analyse(analysis: Analysis, path: Path, report: Callable[[float], None]) -> Result:
    slide = open_slide_view(path)
    try:
        return analysis.run(slide, report)
    finally:
        close = getattr(slide, "close", None)
        if close is not None:
            close()


async def _failed(db: Database, job: Job, why: str) -> None:
    await db.analyses.end(job.id, "failed", error=why[:500])
    await db.audit.record("analysis failed", slide_id=job.slide_id, detail=f"{_detail(job)}: {why[:200]}")


def _detail(job: Job) -> str:
    return f"{job.analysis}, job {job.id}"
