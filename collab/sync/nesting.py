"""How deep in shared types each item of a document sits, so that an update nesting them past
MAX_TYPE_DEPTH is refused, whether it builds the depth at once or one level per update."""

from __future__ import annotations

import logging
from bisect import bisect_left, bisect_right

from collab.sync.protocol import ProtocolError
from collab.sync.yupdate import MAX_TYPE_DEPTH, Shape, Struct, UpdateRefused, read_update

log = logging.getLogger("collab.sync")

# Depths while placing an update's items; a GC struct's is _GONE.
_UNPLACED, _PLACING, _GONE = -2, -1, 0


Placed = tuple[list[Struct], list[int]]  # an update's items and the depth of each


class Nesting:
    """How deep in shared types each item of one document sits (a root's entries: 1), so that
    types nested past MAX_TYPE_DEPTH are refused, built at once or one level per update.

    An item's depth is its parent type's plus one, or its origins' (it sits beside them). One
    whose origin, right origin or parent is nowhere known (yrs keeps it until that arrives)
    counts as MAX_TYPE_DEPTH deep: whatever it will be, nothing can be nested in it. One placed
    by a GC struct (a deleted type's content) is dropped by yrs: it counts as at the root.
    """

    def __init__(self, state: bytes) -> None:
        """From the document as a whole (``Doc.get_update()``). Should it hold what this reader
        cannot read (a weak link, stored before such parts were refused), every item counts as
        unknown: new annotations and messages still come in, nothing nests in what is there."""
        self._runs: dict[int, _Runs] = {}
        try:
            self.record(self._place(read_update(state, limits=False), refuse=False))
        except ProtocolError as exc:
            log.warning("the depth of shared types in a stored document is unknown: %s", exc)

    def check(self, update: bytes) -> Placed:
        """Read and place an update; raises UpdateRefused (or MalformedUpdate). Pass what it
        returns to ``record`` once the update is applied."""
        return self._place(read_update(update), refuse=True)

    def note(self, update: bytes) -> None:
        """Record an update the server made itself (never refused)."""
        self.record(self._place(read_update(update, limits=False), refuse=False))

    def record(self, placed: Placed) -> None:
        items, depths = placed
        for struct, depth in zip(items, depths, strict=True):
            runs = self._runs.get(struct.client)
            if runs is None:
                runs = self._runs[struct.client] = _Runs()
            runs.add(struct.clock, struct.clock + struct.length, depth)

    def _place(self, shape: Shape, *, refuse: bool) -> Placed:
        """Each item's depth, placing first what it refers to (with an explicit stack: origins and
        parents may chain through the update in any order)."""
        items = shape.items
        starts: dict[int, tuple[list[int], list[int]]] = {}  # client -> clocks, item indexes
        for index, struct in enumerate(items):
            clocks, indexes = starts.setdefault(struct.client, ([], []))
            clocks.append(struct.clock)
            indexes.append(index)
        runs = self._runs
        depths = [_UNPLACED] * len(items)
        for first in range(len(items)):
            stack = [first] if depths[first] == _UNPLACED else []
            while stack:
                index = stack[-1]
                struct = items[index]
                parent = struct.parent
                unknown = False
                if struct.gone:
                    depth = _GONE
                elif isinstance(parent, str):
                    depth = 1
                else:
                    depths[index] = _PLACING
                    deepest, waiting = _GONE, None
                    for ref in (parent,) if parent is not None else (struct.origin, struct.right):
                        if ref is None:
                            continue
                        found = None  # the depth of what ``ref`` names: in the update, or known
                        mine = starts.get(ref[0])
                        if mine is not None and (at := bisect_right(mine[0], ref[1]) - 1) >= 0:
                            other = mine[1][at]
                            if ref[1] < items[other].clock + items[other].length:
                                if depths[other] == _UNPLACED:
                                    waiting = other
                                    break
                                if depths[other] >= _GONE:  # not _PLACING: a cycle
                                    found = depths[other]
                        known = runs[ref[0]].depth(ref[1]) if ref[0] in runs else None
                        if known is not None and (found is None or known > found):
                            found = known
                        if found is None:  # nowhere: yrs keeps it until it arrives
                            unknown, found = True, MAX_TYPE_DEPTH
                        deepest = max(deepest, found)
                    if waiting is not None:
                        stack.append(waiting)
                        continue
                    depth = deepest + 1 if parent is not None else deepest
                if refuse and depth > MAX_TYPE_DEPTH:
                    raise UpdateRefused(
                        "an item inside a shared type this document does not hold"
                        if unknown
                        else f"shared types nested past {MAX_TYPE_DEPTH} levels"
                    )
                depths[index] = depth
                stack.pop()
        return items, depths


class _Runs:
    """One client's items as runs of clocks at one depth: [start, end) -> depth, sorted, disjoint."""

    __slots__ = ("depths", "ends", "starts")

    def __init__(self) -> None:
        self.starts: list[int] = []
        self.ends: list[int] = []
        self.depths: list[int] = []

    def depth(self, clock: int) -> int | None:
        at = bisect_right(self.starts, clock) - 1
        return self.depths[at] if at >= 0 and clock < self.ends[at] else None

    def add(self, start: int, end: int, depth: int) -> None:
        """Note [start, end) at ``depth``; where it overlaps what is known, the deeper stays."""
        starts, ends, depths = self.starts, self.ends, self.depths
        if not starts or start >= ends[-1]:  # the usual case: a client's next items
            if starts and start == ends[-1] and depths[-1] == depth:
                ends[-1] = end
            else:
                starts.append(start)
                ends.append(end)
                depths.append(depth)
            return
        first, last = bisect_right(ends, start), bisect_left(starts, end)
        pieces: list[tuple[int, int, int]] = []
        cursor = start
        for at in range(first, last):
            run_start, run_end, run_depth = starts[at], ends[at], depths[at]
            if run_start < start:
                pieces.append((run_start, start, run_depth))
            if cursor < run_start:
                pieces.append((cursor, run_start, depth))
            cursor = min(run_end, end)
            pieces.append((max(run_start, start), cursor, max(run_depth, depth)))
            if run_end > end:
                pieces.append((end, run_end, run_depth))
        if cursor < end:
            pieces.append((cursor, end, depth))
        starts[first:last] = [p[0] for p in pieces]
        ends[first:last] = [p[1] for p in pieces]
        depths[first:last] = [p[2] for p in pieces]
