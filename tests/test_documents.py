"""Document storage: append, reload, compact: on a real SQLite file."""

from __future__ import annotations

import asyncio
from pathlib import Path

from pycrdt import Doc, Map

from collab.store import Database
from collab.sync.rooms import COMPACT_AFTER, Rooms
from tests.conftest import db_url


def test_updates_reload_and_compact_into_a_snapshot(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with Database(tmp_path / "collab.sqlite3", db_url()) as db:
            org = await db.catalog.add_org("North Trust")
            case = await db.catalog.add_case("S1", org.id)
            source: Doc = Doc()
            annotations = source.get("annotations", type=Map)
            updates: list[bytes] = []
            source.observe(lambda event: updates.append(event.update))
            for number in range(COMPACT_AFTER + 10):
                annotations[f"a{number}"] = number
            await db.documents.append([(case.id, update) for update in updates])
            assert await db.documents.pending_count(case.id) == COMPACT_AFTER + 10

            async with Rooms(db.documents) as rooms:
                room = await rooms.join(case.id)
                assert room.doc.get("annotations", type=Map).to_py() == annotations.to_py()
                await rooms.left(room)  # the last one left: saved, compacted, unloaded
            assert await db.documents.pending_count(case.id) == 0
            [snapshot] = await db.documents.load(case.id)
            reloaded: Doc = Doc()
            reloaded.apply_update(snapshot)
            assert reloaded.get("annotations", type=Map).to_py() == annotations.to_py()
            # Later updates go on top of the snapshot.
            annotations["late"] = "after the snapshot"
            await db.documents.append([(case.id, updates[-1])])
            again: Doc = Doc()
            for update in await db.documents.load(case.id):
                again.apply_update(update)
            assert again.get("annotations", type=Map)["late"] == "after the snapshot"

    asyncio.run(scenario())
