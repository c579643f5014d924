"""``collab analyses``: run analyses of a slide now (``run``), or be a worker process taking
queued jobs from the database (``worker``)."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import sys
from typing import Any, TextIO

from collab.admin import CommandError
from collab.analysis.jobs import run_job
from collab.analysis.registry import UnknownAnalysis, installed, load
from collab.config import Settings
from collab.store.database import Database

# A running job whose heartbeat is this old lost its worker (jobs beat twice a second).
STALE_S = 30.0
IDLE_S = 2.0  # how often an idle worker looks for queued jobs


def add_parser(commands: Any, common: argparse.ArgumentParser) -> None:
    analyses = commands.add_parser("analyses", help="slide analyses (decision support: QC, stain, plug-ins)")
    analyses_cmd = analyses.add_subparsers(dest="action", required=True, metavar="ACTION")
    run = analyses_cmd.add_parser(
        "run", parents=[common], help="run analyses of a slide now, showing progress; prints each result id"
    )
    run.add_argument("slide_id", metavar="SLIDE_ID")
    run.add_argument("--name", action="append", help="the analysis to run (default: every one installed)")
    worker = analyses_cmd.add_parser(
        "worker", parents=[common], help="take queued analysis jobs from the database, one at a time"
    )
    worker.add_argument("--once", action="store_true", help="stop when no job is queued")


# Analyses are background work: beside a server on the same machine, the scheduler gives the
# server's event loop the CPU first (docs/performance.md, "Analysis jobs beside a live room").
NICENESS = 10


async def run_analyses(args: argparse.Namespace) -> int:
    with contextlib.suppress(OSError, AttributeError):
        os.nice(NICENESS)
    async with Database(Settings(data_dir=args.data_dir).database_path, args.database_url) as db:
        if args.action == "run":
            return await _run(db, args.slide_id, args.name or installed())
        return await _work(db, once=args.once)


async def _run(db: Database, slide_id: str, names: list[str]) -> int:
    slide = await db.catalog.slide(slide_id)
    if slide is None:
        raise CommandError(f"no slide has the id {slide_id!r}")
    if not names:
        raise CommandError("no analysis is installed (docs/analysis.md says how to add one)")
    for name in names:
        try:
            load(name)
        except UnknownAnalysis as exc:
            raise CommandError(str(exc)) from None
    failed = 0
    for name in names:
        job_id = await db.analyses.enqueue(slide_id, name, requested_by=None)
        await db.audit.record(
            "analysis requested", username="(command line)", case_id=slide.case_id, slide_id=slide_id,
            detail=f"{name}, job {job_id}",
        )  # fmt: skip
        job = await db.analyses.claim(job_id)
        if job is None:  # a worker took it first: it runs there
            print(f"collab: {name}: job {job_id} is running in a worker", file=sys.stderr)
            continue
        bar = ProgressBar(name, sys.stderr)
        bar.show(0.0)
        result_id = await run_job(db, job, on_progress=bar.show)
        bar.end()
        if result_id is None:
            ended = await db.analyses.job(job_id)
            why = ended.error if ended and ended.error else (ended.state if ended else "lost")
            print(f"collab: {name} did not finish: {why}", file=sys.stderr)
            failed += 1
        else:
            print(result_id)
    return 1 if failed else 0


async def _work(db: Database, *, once: bool) -> int:
    # SIGTERM (the server stopping, or a service manager): a running job goes back to the queue
    # uncounted, and the worker ends without waiting for the analysis's thread to finish.
    stop = asyncio.Event()
    with contextlib.suppress(NotImplementedError):
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    stopped = asyncio.ensure_future(stop.wait())
    while not stop.is_set():
        requeued, failed = await db.analyses.requeue_stale(older_than_s=STALE_S)
        for job_id in requeued:
            print(f"collab: job {job_id} lost its worker: queued again", file=sys.stderr)
        for job_id in failed:
            print(f"collab: job {job_id} lost its worker twice: failed", file=sys.stderr)
        job = await db.analyses.claim()
        if job is None:
            if once:
                break
            await asyncio.wait({stopped}, timeout=IDLE_S)
            continue
        running = asyncio.ensure_future(run_job(db, job))
        await asyncio.wait({running, stopped}, return_when=asyncio.FIRST_COMPLETED)
        if not running.done():
            await db.analyses.release(job.id)
            print(
                f"collab: job {job.id} ({job.analysis}) queued again: this worker was stopped",
                file=sys.stderr,
            )
            await db.__aexit__(None, None, None)
            # The analysis's thread cannot be interrupted, and asyncio.run would wait for it.
            os._exit(0)
        result_id = running.result()
        outcome = f"result {result_id}" if result_id is not None else "did not finish"
        print(f"collab: job {job.id} ({job.analysis}, slide {job.slide_id}): {outcome}", file=sys.stderr)
    stopped.cancel()
    return 0


class ProgressBar:
    """On a terminal, a bar redrawn in place; elsewhere (a log), a line at every tenth."""

    WIDTH = 30

    def __init__(self, label: str, out: TextIO) -> None:
        self.label = label
        self.out = out
        self.tty = out.isatty()
        self.shown = -1

    def show(self, fraction: float) -> None:
        percent = int(min(max(fraction, 0.0), 1.0) * 100)
        if self.tty:
            filled = percent * self.WIDTH // 100
            bar = "#" * filled + "." * (self.WIDTH - filled)
            print(f"\r{self.label} [{bar}] {percent:3d}%", end="", file=self.out, flush=True)
        elif percent // 10 > self.shown:
            self.shown = percent // 10
            print(f"{self.label}: {percent}%", file=self.out, flush=True)

    def end(self) -> None:
        if self.tty:
            print(file=self.out, flush=True)
