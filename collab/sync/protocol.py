"""The y-websocket wire format, read strictly: a bad frame is an error, never a guess.

A frame is a varuint message type, then for SYNC a varuint sub-type and a
length-prefixed payload, for AWARENESS a length-prefixed awareness update, for
QUERY_AWARENESS nothing. Lengths that run past the frame are errors.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

from pycrdt import YMessageType, YSyncMessageType, write_var_uint

QUERY_AWARENESS = 3
AUTH = 2


MAX_SAFE_INTEGER = 2**53 - 1


class ProtocolError(ValueError):
    """A frame that does not follow the protocol."""


class _Reader:
    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def var_uint(self) -> int:
        value, shift = 0, 0
        while True:
            if self.pos >= len(self.data):
                raise ProtocolError("truncated number")
            byte = self.data[self.pos]
            self.pos += 1
            value |= (byte & 0x7F) << shift
            if byte < 0x80:
                # Browsers (lib0) refuse numbers past 2**53 - 1: relaying one would break every
                # other participant's connection, so it is the sender's error here.
                if value > MAX_SAFE_INTEGER:
                    raise ProtocolError("number too large")
                return value
            shift += 7
            if shift > 53:
                raise ProtocolError("number too long")

    def var_bytes(self) -> bytes:
        length = self.var_uint()
        end = self.pos + length
        if end > len(self.data):
            raise ProtocolError("length beyond the end of the frame")
        chunk = self.data[self.pos : end]
        self.pos = end
        return chunk

    def var_string(self) -> str:
        try:
            return self.var_bytes().decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ProtocolError("text is not UTF-8") from exc

    def done(self) -> bool:
        return self.pos == len(self.data)


@dataclass(frozen=True)
class Frame:
    """One parsed message."""

    kind: int  # YMessageType.SYNC / AWARENESS, or QUERY_AWARENESS / AUTH
    sync_kind: int | None = None  # YSyncMessageType for SYNC frames
    payload: bytes = b""


def parse(data: bytes) -> Frame:
    """Parse one frame; raises ProtocolError if it is malformed."""
    reader = _Reader(data)
    kind = reader.var_uint()
    if kind == YMessageType.SYNC:
        sync_kind = reader.var_uint()
        if sync_kind not in (
            YSyncMessageType.SYNC_STEP1,
            YSyncMessageType.SYNC_STEP2,
            YSyncMessageType.SYNC_UPDATE,
        ):
            raise ProtocolError(f"unknown sync message {sync_kind}")
        frame = Frame(kind, sync_kind, reader.var_bytes())
    elif kind == YMessageType.AWARENESS:
        frame = Frame(kind, None, reader.var_bytes())
    elif kind in (QUERY_AWARENESS, AUTH):
        return Frame(kind)  # nothing else is read from these
    else:
        raise ProtocolError(f"unknown message type {kind}")
    if not reader.done():
        raise ProtocolError("bytes after the end of the message")
    return frame


@dataclass(frozen=True)
class AwarenessEntry:
    """One client's awareness state as sent: its clock and JSON text ("null" when gone)."""

    client_id: int
    clock: int
    state_json: str
    # As ``parse_awareness`` read it (None when gone), so that nobody parses it again; and the
    # length of ``state_json`` in UTF-8.
    state: dict[str, Any] | None = field(default=None, compare=False, repr=False)
    size: int = field(default=0, compare=False, repr=False)


# A viewer's state is some 300-500 bytes; this leaves room for a long name and every field at
# once, many times over (docs/sync.md). What one person keeps in a room is bounded too
# (collab.sync.presence).
MAX_AWARENESS_STATE = 16 * 1024


def _not_json(name: str) -> None:
    raise ValueError(f"{name} is not JSON")


# A JSON escape of a UTF-16 surrogate (\ud800 to \udfff); pairs of them are one character.
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")


def _has_lone_surrogate(state: object) -> bool:
    try:
        json.dumps(state, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def parse_awareness(update: bytes) -> list[AwarenessEntry]:
    """The entries of an awareness update; each state must be a JSON object (or null) of bounded size.

    Everything kept here is relayed to every browser in the room, whose y-protocols code runs
    ``JSON.parse`` on it and reads it as an object: Python's extras (NaN, Infinity) or another
    JSON value would throw or confuse every other participant's viewer, not the sender's.
    """
    reader = _Reader(update)
    count = reader.var_uint()
    if count > 1000:
        raise ProtocolError("too many awareness entries")
    entries = []
    for _ in range(count):
        client_id, clock = reader.var_uint(), reader.var_uint()
        if clock >= MAX_SAFE_INTEGER:  # leaving adds 1 to the clock
            raise ProtocolError("awareness clock too large")
        raw = reader.var_bytes()
        if len(raw) > MAX_AWARENESS_STATE:
            raise ProtocolError("awareness state too large")
        try:
            text = raw.decode("utf-8")
            state = json.loads(text, parse_constant=_not_json)
            # UTF-8 cannot carry a lone surrogate, but a JSON escape can: text no one can store
            # or encode. Only the rare state with such an escape is looked at twice.
            if "\\u" in text and _SURROGATE_ESCAPE.search(text) and _has_lone_surrogate(state):
                raise ProtocolError("awareness state has a lone surrogate")
        except ProtocolError:
            raise
        except ValueError as exc:  # UnicodeDecodeError is one
            raise ProtocolError("awareness state is not JSON") from exc
        except RecursionError as exc:  # '[[[[...' fits in 16 KiB and is no state of a viewer
            raise ProtocolError("awareness state nested too deeply") from exc
        if state is not None and not isinstance(state, dict):
            raise ProtocolError("awareness state is not a JSON object")
        entries.append(AwarenessEntry(client_id, clock, text, state, len(raw)))
    if not reader.done():
        raise ProtocolError("bytes after the awareness entries")
    return entries


def encode_awareness(entries: list[AwarenessEntry]) -> bytes:
    """An AWARENESS frame carrying these entries."""
    body = awareness_payload(entries)
    return bytes([YMessageType.AWARENESS]) + write_var_uint(len(body)) + body


def awareness_payload(entries: list[AwarenessEntry]) -> bytes:
    """The payload of an AWARENESS frame carrying these entries (what ``parse_awareness`` reads)."""
    return write_var_uint(len(entries)) + b"".join(
        write_var_uint(e.client_id)
        + write_var_uint(e.clock)
        + write_var_uint(len(t := e.state_json.encode()))
        + t
        for e in entries
    )


def parse_state_vector(data: bytes) -> dict[int, int]:
    """A Yjs state vector: client id -> number of items seen from it."""
    reader = _Reader(data)
    clocks = {}
    for _ in range(reader.var_uint()):
        client = reader.var_uint()
        clocks[client] = reader.var_uint()
    if not reader.done():
        raise ProtocolError("bytes after the state vector")
    return clocks
