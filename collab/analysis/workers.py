"""The analysis worker processes a server starts beside itself (``--analysis-workers``): each is
``collab analyses worker`` on the same database, so an analysis holds a CPU of its own process,
never the server's event loop or tile threads.

One that dies is started again after a pause that grows while it keeps dying (a broken
install must not spin); a job it held is queued again by the next worker to look
(``Analyses.requeue_stale``). They stop with the server.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
from pathlib import Path
from types import TracebackType

FIRST_PAUSE_S = 1.0
LONGEST_PAUSE_S = 60.0
# A worker that lived this long was well: the next death pauses from the start again.
HEALTHY_S = 60.0
STOP_WAIT_S = 5.0


class AnalysisWorkers:
    """``count`` supervised worker processes for the database of ``data_dir`` (or ``database_url``)."""

    def __init__(self, count: int, data_dir: Path, database_url: str | None) -> None:
        self.count = count
        self.data_dir = data_dir
        self.database_url = database_url
        self.processes: list[asyncio.subprocess.Process | None] = [None] * count
        self._tasks: list[asyncio.Task[None]] = []
        self._stopping = False

    async def __aenter__(self) -> AnalysisWorkers:
        self._tasks = [asyncio.create_task(self._keep(slot)) for slot in range(self.count)]
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._stopping = True
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await asyncio.gather(*(self._stop(p) for p in self.processes if p is not None))

    async def _keep(self, slot: int) -> None:
        pause = FIRST_PAUSE_S
        loop = asyncio.get_running_loop()
        while not self._stopping:
            began = loop.time()
            process = await self._start()
            self.processes[slot] = process
            code = await process.wait()
            if self._stopping:
                return
            pause = FIRST_PAUSE_S if loop.time() - began > HEALTHY_S else min(pause * 2, LONGEST_PAUSE_S)
            print(
                f"collab: analysis worker {process.pid} ended (exit {code}); another starts in {pause:.0f} s",
                file=sys.stderr,
            )
            await asyncio.sleep(pause)

    async def _start(self) -> asyncio.subprocess.Process:
        env = dict(os.environ)
        # The database's address may hold a password: it travels in the environment, never in
        # the command line that ps shows.
        if self.database_url:
            env["COLLAB_DATABASE_URL"] = self.database_url
        return await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "collab",
            "analyses",
            "worker",
            "--data-dir",
            str(self.data_dir),
            env=env,
            stdin=asyncio.subprocess.DEVNULL,
        )

    async def _stop(self, process: asyncio.subprocess.Process) -> None:
        if process.returncode is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            process.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(process.wait(), STOP_WAIT_S)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                process.kill()
            await process.wait()
