"""Analyses of slides: the job queue that worker processes take jobs from, and the results.

A job is ``queued``, then ``running`` in one worker (``claim``), then ``done``, ``failed`` or
``cancelled``. A worker that stops mid-job (killed, the machine restarted) stops its heartbeat;
``requeue_stale`` gives such a job one more attempt, and fails it after a second crash. A result
is stored as the JSON of a ``collab.analysis.result.Result``, with where it came from.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from collab.store.database import now_iso

if TYPE_CHECKING:
    from collab.store.database import Database, Row

STATES = ("queued", "running", "done", "failed", "cancelled")
ENDED = ("done", "failed", "cancelled")
# A job is tried at most this many times when its worker crashes; an analysis that raises is
# not tried again (it would raise again).
MAX_ATTEMPTS = 2
# Where results computed here come from; an outside tool's results name the tool instead.
HERE = "collab"
# The newest result of each analysis and source on each slide: older ones are superseded.
NEWEST = "SELECT max(id) FROM analysis_results GROUP BY slide_id, analysis, source"
# Flags nobody has confirmed or dismissed yet, of newest results, of the case ``v.id``.
# Scores of the newest results of outside tools. The worklist shows those: a tool posts the few
# that triage by (a likelihood, a grade); the analyses run here speak through their flags, their
# scores being the measurements behind them.
_TOOL_SCORES = (
    "SELECT s.case_id, sc.slide_id, sc.name, sc.value, r.analysis, r.version, r.source"
    " FROM analysis_scores AS sc JOIN slides AS s ON s.id = sc.slide_id"
    f" JOIN analysis_results AS r ON r.id = sc.result_id WHERE r.source <> '{HERE}'"
    f" AND sc.result_id IN ({NEWEST})"
)
# A case's highest such score, for sorting the worklist by them.
TOP_TOOL_SCORE_OF_CASE = (
    "SELECT max(sc.value) FROM analysis_scores AS sc JOIN slides AS s ON s.id = sc.slide_id"
    f" JOIN analysis_results AS r ON r.id = sc.result_id WHERE s.case_id = v.id AND r.source <> '{HERE}'"
    f" AND sc.result_id IN ({NEWEST})"
)
OPEN_FLAG_OF_CASE = (
    "SELECT 1 FROM analysis_flags AS f JOIN slides AS s ON s.id = f.slide_id"
    f" WHERE s.case_id = v.id AND f.review IS NULL AND f.result_id IN ({NEWEST})"
)


@dataclass(frozen=True)
class Job:
    id: int
    slide_id: str
    analysis: str
    state: str
    progress: float  # 0..1
    attempts: int
    requested_by: int | None
    requested: str
    started: str | None
    heartbeat: str | None
    finished: str | None
    cancel: bool
    error: str | None
    result_id: int | None


# An OpenFlag's columns, of flags nobody has reviewed yet.
_OPEN_FLAGS = (
    "SELECT f.id, s.case_id, f.slide_id, f.name, f.reason, r.analysis, r.version, r.source"
    " FROM analysis_flags AS f JOIN slides AS s ON s.id = f.slide_id"
    " JOIN analysis_results AS r ON r.id = f.result_id WHERE f.review IS NULL"
)


@dataclass(frozen=True)
class OpenFlag:
    """A flag of a newest result, waiting for a person to confirm or dismiss it."""

    id: int
    case_id: str
    slide_id: str
    name: str
    reason: str
    analysis: str
    version: str
    source: str


@dataclass(frozen=True)
class ToolScore:
    """A score of an outside tool's newest result on a slide of the case."""

    case_id: str
    slide_id: str
    name: str
    value: float
    analysis: str
    version: str
    source: str


@dataclass(frozen=True)
class StoredResult:
    id: int
    slide_id: str
    analysis: str
    version: str
    source: str  # HERE, or the name of the outside tool that posted it
    made: str
    job_id: int | None
    result: dict[str, Any]  # Result.to_json()


def _job(row: Row) -> Job:
    values = dict(row)
    values["cancel"] = bool(values["cancel"])
    values["progress"] = float(values["progress"])
    return Job(**values)


def _result(row: Row) -> StoredResult:
    values = dict(row)
    values["result"] = json.loads(values["result"])
    return StoredResult(**values)


class Analyses:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def enqueue(self, slide_id: str, analysis: str, *, requested_by: int | None) -> int:
        job_id = await self.db.write(
            "INSERT INTO analysis_jobs (slide_id, analysis, requested_by, requested) VALUES (?, ?, ?, ?)",
            (slide_id, analysis, requested_by, now_iso()),
        )
        assert job_id is not None
        return job_id

    async def job(self, job_id: int) -> Job | None:
        row = await self.db.one("SELECT * FROM analysis_jobs WHERE id = ?", (job_id,))
        return _job(row) if row else None

    async def jobs_of_slide(self, slide_id: str) -> list[Job]:
        rows = await self.db.all("SELECT * FROM analysis_jobs WHERE slide_id = ? ORDER BY id", (slide_id,))
        return [_job(r) for r in rows]

    async def claim(self, job_id: int | None = None) -> Job | None:
        """Take the oldest queued job (or that one) for this worker; None if there is none. Two
        workers asking at once never get the same job: the update checks it is still queued."""
        while True:
            if job_id is None:
                row = await self.db.one(
                    "SELECT id FROM analysis_jobs WHERE state = 'queued' ORDER BY id LIMIT 1"
                )
                if row is None:
                    return None
                candidate = int(row["id"])
            else:
                candidate = job_id
            now = now_iso()
            cursor = await self.db.conn.execute(
                "UPDATE analysis_jobs SET state = 'running', attempts = attempts + 1, started = ?,"
                " heartbeat = ?, progress = 0 WHERE id = ? AND state = 'queued'",
                (now, now, candidate),
            )
            await self.db.conn.commit()
            if cursor.rowcount == 1:
                return await self.job(candidate)
            if job_id is not None:
                return None  # taken by another worker, or no longer queued

    async def beat(self, job_id: int, progress: float) -> bool:
        """Note the running job's progress (0..1); True if someone asked to cancel it."""
        await self.db.write(
            "UPDATE analysis_jobs SET progress = ?, heartbeat = ? WHERE id = ? AND state = 'running'",
            (min(max(progress, 0.0), 1.0), now_iso(), job_id),
        )
        row = await self.db.one("SELECT cancel FROM analysis_jobs WHERE id = ?", (job_id,))
        return bool(row and row["cancel"])

    async def cancel(self, job_id: int) -> str | None:
        """Cancel a job: a queued one at once, a running one at its next progress report.
        Returns its state after the request (None: no such job)."""
        await self.db.write(
            "UPDATE analysis_jobs SET state = 'cancelled', finished = ? WHERE id = ? AND state = 'queued'",
            (now_iso(), job_id),
        )
        await self.db.write(
            "UPDATE analysis_jobs SET cancel = 1 WHERE id = ? AND state = 'running'", (job_id,)
        )
        job = await self.job(job_id)
        return job.state if job else None

    async def end(
        self, job_id: int, state: str, *, error: str | None = None, result_id: int | None = None
    ) -> None:
        """A running job ended: ``done`` (with its result), ``failed`` (why) or ``cancelled``."""
        assert state in ENDED, state
        progress = ", progress = 1" if state == "done" else ""
        await self.db.write(
            f"UPDATE analysis_jobs SET state = ?, finished = ?, error = ?, result_id = ?{progress}"
            " WHERE id = ? AND state = 'running'",
            (state, now_iso(), error, result_id, job_id),
        )

    async def release(self, job_id: int) -> None:
        """Its worker was asked to stop (the server stopping): the running job is queued again,
        and the attempt is not counted against it."""
        await self.db.write(
            "UPDATE analysis_jobs SET state = 'queued',"
            " attempts = CASE WHEN attempts > 0 THEN attempts - 1 ELSE 0 END, heartbeat = NULL,"
            " progress = 0 WHERE id = ? AND state = 'running'",
            (job_id,),
        )

    async def requeue_stale(self, *, older_than_s: float) -> tuple[list[int], list[int]]:
        """Running jobs whose heartbeat stopped ``older_than_s`` ago: their worker crashed.
        Queued again if they have attempts left, else failed. Returns (requeued, failed) ids."""
        cutoff = (datetime.now(UTC) - timedelta(seconds=older_than_s)).isoformat(timespec="seconds")
        rows = await self.db.all(
            "SELECT id, attempts FROM analysis_jobs WHERE state = 'running' AND heartbeat < ?", (cutoff,)
        )
        requeued, failed = [], []
        for row in rows:
            job_id, attempts = int(row["id"]), int(row["attempts"])
            if attempts < MAX_ATTEMPTS:
                await self.db.write(
                    "UPDATE analysis_jobs SET state = 'queued', heartbeat = NULL, progress = 0"
                    " WHERE id = ? AND state = 'running' AND heartbeat < ?",
                    (job_id, cutoff),
                )
                requeued.append(job_id)
            else:
                await self.db.write(
                    "UPDATE analysis_jobs SET state = 'failed', finished = ?, error = ?"
                    " WHERE id = ? AND state = 'running' AND heartbeat < ?",
                    (now_iso(), f"its worker stopped {attempts} times", job_id, cutoff),
                )
                failed.append(job_id)
        return requeued, failed

    async def add_result(
        self, slide_id: str, result: dict[str, Any], *, source: str, job_id: int | None = None
    ) -> int:
        """Store a result (``Result.to_json()``); returns its id."""
        result_id = await self.db.write(
            "INSERT INTO analysis_results (slide_id, analysis, version, source, made, job_id, result)"
            " VALUES (?, ?, ?, ?, ?, ?, ?)",
            (
                slide_id,
                result["analysis"],
                result["version"],
                source,
                now_iso(),
                job_id,
                json.dumps(result, separators=(",", ":")),
            ),
        )
        assert result_id is not None
        for flag in result["flags"]:
            await self.db.write(
                "INSERT INTO analysis_flags (result_id, slide_id, name, reason) VALUES (?, ?, ?, ?)",
                (result_id, slide_id, flag["name"], flag["reason"]),
            )
        for name, value in result["scores"].items():
            await self.db.write(
                "INSERT INTO analysis_scores (result_id, slide_id, name, value) VALUES (?, ?, ?, ?)",
                (result_id, slide_id, name, float(value)),
            )
        return result_id

    async def result(self, result_id: int) -> StoredResult | None:
        row = await self.db.one("SELECT * FROM analysis_results WHERE id = ?", (result_id,))
        return _result(row) if row else None

    async def results_of_slide(self, slide_id: str) -> list[StoredResult]:
        """The newest result of each (analysis, source) on the slide, oldest analysis first."""
        rows = await self.db.all(
            "SELECT * FROM analysis_results WHERE id IN (SELECT max(id) FROM analysis_results"
            " WHERE slide_id = ? GROUP BY analysis, source) ORDER BY id",
            (slide_id,),
        )
        return [_result(r) for r in rows]

    async def open_flags(self, case_ids: list[str]) -> dict[str, list[OpenFlag]]:
        """The open flags of these cases' slides, by case, oldest first."""
        if not case_ids:
            return {}
        marks = ", ".join("?" * len(case_ids))
        rows = await self.db.all(
            f"{_OPEN_FLAGS} AND s.case_id IN ({marks}) AND f.result_id IN ({NEWEST}) ORDER BY f.id",
            case_ids,
        )
        found: dict[str, list[OpenFlag]] = {}
        for row in rows:
            flag = OpenFlag(**dict(row))
            found.setdefault(flag.case_id, []).append(flag)
        return found

    async def tool_scores(self, case_ids: list[str]) -> dict[str, list[ToolScore]]:
        """The scores outside tools gave these cases' slides (their newest results), by case."""
        if not case_ids:
            return {}
        marks = ", ".join("?" * len(case_ids))
        rows = await self.db.all(
            f"{_TOOL_SCORES} AND s.case_id IN ({marks}) ORDER BY sc.result_id, sc.name", case_ids
        )
        found: dict[str, list[ToolScore]] = {}
        for row in rows:
            score = ToolScore(**dict(row))
            found.setdefault(score.case_id, []).append(score)
        return found

    async def flag(self, flag_id: int) -> OpenFlag | None:
        """An open flag (None: no such flag, or it was reviewed already)."""
        row = await self.db.one(
            f"{_OPEN_FLAGS} AND f.id = ?",
            (flag_id,),
        )
        return OpenFlag(**dict(row)) if row else None

    async def review_flag(self, flag_id: int, review: str, *, by: int) -> bool:
        """Confirm or dismiss an open flag; False if someone reviewed it first."""
        assert review in ("confirmed", "dismissed"), review
        cursor = await self.db.conn.execute(
            "UPDATE analysis_flags SET review = ?, reviewed_by = ?, reviewed = ?"
            " WHERE id = ? AND review IS NULL",
            (review, by, now_iso(), flag_id),
        )
        await self.db.conn.commit()
        return bool(cursor.rowcount == 1)
