"""A small Yjs update (v1) writer for tests: lets a test build shapes no editor would make.

The layout follows yjs ``src/utils/encoding.js`` (writeClientsStructs, writeDeleteSet),
``src/structs/Item.js`` (Item.write) and lib0 ``encoding.js`` (writeVarUint, writeAny).
"""

from __future__ import annotations

import struct
from typing import Any

ID = tuple[int, int]  # (Yjs client id, clock)

# Content kinds, as Item.js numbers them (the low five bits of an item's info byte).
DELETED, JSON, BINARY, STRING, EMBED, FORMAT, TYPE, ANY, DOC = range(1, 10)
GC, SKIP = 0, 10
# Shared type kinds (ContentType.js).
Y_ARRAY, Y_MAP, Y_TEXT, Y_XML_ELEMENT, Y_XML_FRAGMENT, Y_XML_HOOK, Y_XML_TEXT = range(7)


def uint(n: int) -> bytes:
    """lib0 writeVarUint."""
    out = bytearray()
    while n > 0x7F:
        out.append(0x80 | (n & 0x7F))
        n >>= 7
    out.append(n)
    return bytes(out)


def int_(n: int) -> bytes:
    """lib0 writeVarInt: sign in the first byte's bit 6, six bits there, then seven a byte."""
    sign, n = (0x40, -n) if n < 0 else (0, n)
    out = bytearray([(0x80 if n > 0x3F else 0) | sign | (n & 0x3F)])
    n >>= 6
    while n > 0:
        out.append((0x80 if n > 0x7F else 0) | (n & 0x7F))
        n >>= 7
    return bytes(out)


def string(text: str) -> bytes:
    """lib0 writeVarString (UTF-8, length first)."""
    data = text.encode()
    return uint(len(data)) + data


def any_(value: Any) -> bytes:
    """lib0 writeAny (recursive: keep test values shallow; see ``nested_any`` for deep ones)."""
    if value is None:
        return b"\x7e"
    if value is True:
        return b"\x78"
    if value is False:
        return b"\x79"
    if isinstance(value, int) and abs(value) <= 0x7FFFFFFF:
        return b"\x7d" + int_(value)
    if isinstance(value, int | float):
        return b"\x7b" + struct.pack(">d", value)
    if isinstance(value, str):
        return b"\x77" + string(value)
    if isinstance(value, bytes):
        return b"\x74" + uint(len(value)) + value
    if isinstance(value, list):
        return b"\x75" + uint(len(value)) + b"".join(any_(v) for v in value)
    if isinstance(value, dict):
        return b"\x76" + uint(len(value)) + b"".join(string(k) + any_(v) for k, v in value.items())
    raise TypeError(type(value))


def nested_any(depth: int) -> bytes:
    """``[[[ ... [null] ... ]]]``, ``depth`` arrays deep, without recursion."""
    return b"\x75\x01" * depth + b"\x7e"


def item(
    kind: int,
    content: bytes,
    *,
    origin: ID | None = None,
    right: ID | None = None,
    parent: str | ID | None = None,
    key: str | None = None,
) -> bytes:
    """One Item struct: info byte, origins, parent (only when there is no origin), content."""
    info = kind | (0x80 if origin else 0) | (0x40 if right else 0) | (0x20 if key is not None else 0)
    out = bytes([info])
    if origin:
        out += uint(origin[0]) + uint(origin[1])
    if right:
        out += uint(right[0]) + uint(right[1])
    if origin is None and right is None:
        if isinstance(parent, str):
            out += uint(1) + string(parent)
        else:
            assert parent is not None, "an item without origins names its parent"
            out += uint(0) + uint(parent[0]) + uint(parent[1])
        if key is not None:
            out += string(key)
    return out + content


def any_content(*values: Any) -> bytes:
    """ContentAny: a count, then each value."""
    return uint(len(values)) + b"".join(any_(v) for v in values)


def type_content(type_kind: int, name: str = "") -> bytes:
    """ContentType: the type's kind (and for XML elements and hooks, a name)."""
    return uint(type_kind) + (string(name) if type_kind in (Y_XML_ELEMENT, Y_XML_HOOK) else b"")


def update(
    groups: list[tuple[int, int, list[bytes]]], deletes: list[tuple[int, list[tuple[int, int]]]] = ()
) -> bytes:
    """An update: per client (id, first clock, structs), then the delete set."""
    out = uint(len(groups))
    for client, clock, structs in groups:
        out += uint(len(structs)) + uint(client) + uint(clock) + b"".join(structs)
    out += uint(len(deletes))
    for client, ranges in deletes:
        out += uint(client) + uint(len(ranges)) + b"".join(uint(c) + uint(n) for c, n in ranges)
    return out
