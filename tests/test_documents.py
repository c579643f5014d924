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


def test_compaction_keeps_what_another_server_stored_that_the_room_never_saw(tmp_path: Path) -> None:
    """With several servers on one database (--redis-url), a room's document may lack updates
    another process stored: compaction folds the stored rows, not the room's document."""

    async def scenario() -> None:
        async with Database(tmp_path / "collab.sqlite3") as db:
            org = await db.catalog.add_org("North Trust")
            case = await db.catalog.add_case("S1", org.id)
            source: Doc = Doc()
            annotations = source.get("annotations", type=Map)
            updates: list[bytes] = []
            source.observe(lambda event: updates.append(event.update))
            for number in range(COMPACT_AFTER + 10):
                annotations[f"a{number}"] = number
            await db.documents.append([(case.id, update) for update in updates])
            async with Rooms(db.documents) as rooms:
                room = await rooms.join(case.id)
                # Another server's peer draws; that server stores it; this room never hears of it.
                elsewhere: Doc = Doc()
                elsewhere.apply_update(source.get_update())
                other: list[bytes] = []
                elsewhere.observe(lambda event: other.append(event.update))
                elsewhere.get("annotations", type=Map)["from-the-other-server"] = 1
                await db.documents.append([(case.id, other[0])])
                assert "from-the-other-server" not in room.doc.get("annotations", type=Map)
                await rooms.left(room)  # compacted
            assert await db.documents.pending_count(case.id) == 0
            reloaded: Doc = Doc()
            for update in await db.documents.load(case.id):
                reloaded.apply_update(update)
            assert reloaded.get("annotations", type=Map)["from-the-other-server"] == 1

    asyncio.run(scenario())
