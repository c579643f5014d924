"""STUB (before the fix): limits and names only."""

from __future__ import annotations

from typing import Any

from collab.sync.protocol import ProtocolError

MAX_VALUE_DEPTH = 32
MAX_VALUE_BYTES = 768 * 1024
MAX_TYPE_DEPTH = 8
MAX_CLOCK = 2**32 - 1


class MalformedUpdate(ProtocolError):
    pass


class UpdateRefused(ProtocolError):
    pass


class Shape:
    def __init__(self) -> None:
        self.clocks: dict[int, int] = {}
        self.items: list[Any] = []


def read_update(update: bytes, *, limits: bool = True) -> Shape:
    return Shape()


class Nesting:
    def __init__(self, state: bytes) -> None:
        pass

    def check(self, update: bytes) -> Any:
        return None

    def record(self, checked: Any) -> None:
        pass
