"""Concurrent callers share one run of the work."""

from __future__ import annotations

import asyncio

from collab.singleflight import SingleFlight


def test_callers_at_the_same_moment_share_one_run_and_its_failure() -> None:
    async def scenario() -> None:
        flight: SingleFlight[str] = SingleFlight()
        runs = 0
        release = asyncio.Event()

        async def work() -> str:
            nonlocal runs
            runs += 1
            await release.wait()
            return "loaded"

        waiting = [asyncio.create_task(flight.run("case", work)) for _ in range(5)]
        await asyncio.sleep(0)  # let them all reach the shared run
        release.set()
        assert await asyncio.gather(*waiting) == ["loaded"] * 5
        assert runs == 1

        async def broken() -> str:
            raise OSError("disk gone")

        failing = [asyncio.create_task(flight.run("other", broken)) for _ in range(3)]
        results = await asyncio.gather(*failing, return_exceptions=True)
        assert all(isinstance(r, OSError) for r in results)
        # A failure is not remembered: the next call runs the work again.
        assert await flight.run("other", work) == "loaded"
        assert runs == 2

    asyncio.run(scenario())
