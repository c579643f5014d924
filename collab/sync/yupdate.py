"""A Yjs update (v1), read before yrs sees it: refuse shapes that would harm the room.

yrs decodes plain values recursively: one value nested 40,000 deep (a 78 KiB update) overflows
the native stack and the server dies with SIGSEGV, logging nothing; pycrdt's events recurse too
(15,000 deep is enough), and so does every browser's ``toJSON`` on deeply nested shared types.
This reader walks the update with an explicit stack, never recursing, and refuses what is past
the limits below; collab.sync.nesting carries the depth of shared types across updates.

The layout is Yjs's: ``src/utils/encoding.js`` (readClientsStructRefs), ``src/utils/DeleteSet.js``
(readDeleteSet), ``src/structs/Item.js`` (info bits, origins, parent) and ``Content*.js``, and
lib0 ``decoding.js`` (readVarUint, readVarInt, readAny). Where yrs reads the same bytes otherwise
(the count of ContentJSON, the name of an XML hook, info bits beyond the content kind, a client
listed twice), the update is refused: the server and the browsers would not hold one document.
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass, field
from typing import NamedTuple

from collab.sync.protocol import MAX_SAFE_INTEGER, ProtocolError

# How deep one plain value may nest (lists and objects in lists and objects; the JSON text of a
# text format or embed alike). The viewer's deepest is 2 (``points``: a list of [x, y]); yrs,
# pycrdt and browsers recurse once per level, and die somewhere past 10,000.
MAX_VALUE_DEPTH = 32
# Bytes of one value as encoded: a string, a binary, a map key, one plain value with all it
# holds. The viewer's largest is a freehand outline's ``points``: 20,000 points (a trace of
# 40,000 screen pixels) take 360 KB. Frames stop at 1 MiB (1009) in any case.
MAX_VALUE_BYTES = 768 * 1024
# How deep shared types may nest (a Y.Map in a Y.Map ...), counting from the root: an
# annotation's or a message's map is 1, its fields 2. Checked across updates (collab.sync.nesting).
MAX_TYPE_DEPTH = 8
# yrs keeps clocks in 32 bits: a struct or deletion ending past this would wrap around.
MAX_CLOCK = 2**32 - 1

# Content kinds (Item.js contentRefs; the low five bits of an item's info byte).
_GC, _DELETED, _JSON, _BINARY, _STRING, _EMBED, _FORMAT, _TYPE, _ANY, _DOC, _SKIP = range(11)
# Shared types with a place in our documents: Y.Array, Y.Map, Y.Text (ContentType.js typeRefs).
# XML types, weak links and subdocuments have none.
_TYPES = frozenset({0, 1, 2})
_XML_ELEMENT, _WEAK_LINK = 3, 7
# lib0 readAny tags.
_UNDEFINED, _NULL, _INT, _F32, _F64, _BIGINT, _FALSE, _TRUE, _STR, _OBJECT, _ARRAY, _BYTES = range(
    127, 115, -1
)
_FIXED = {_UNDEFINED: 0, _NULL: 0, _FALSE: 0, _TRUE: 0, _F32: 4, _F64: 8, _BIGINT: 8}
# Lead bytes of 4-byte UTF-8 sequences: characters that take two UTF-16 units in Yjs's clocks.
_NON_BMP_LEADS = bytes(range(0xF0, 0x100))
_JSON_STRING = re.compile(r'"(?:[^"\\]|\\.)*+"')
_JSON_BRACKET = re.compile(r"[\[\]{}]")

ID = tuple[int, int]  # (Yjs client id, clock)


class MalformedUpdate(ProtocolError):
    """Bytes that are not a Yjs update."""


class UpdateRefused(ProtocolError):
    """An update past a limit, or holding something our documents never hold."""


class Struct(NamedTuple):
    """Where one item of an update goes: its id range and what places it."""

    client: int
    clock: int
    length: int
    origin: ID | None
    right: ID | None
    parent: str | ID | None  # a root's name or a type's id; None when taken from the origins
    gone: bool = False  # a GC struct: what is placed by it is dropped (by yrs and Yjs alike)


@dataclass(slots=True)
class Shape:
    """What ``read_update`` found: the items, and each client's clock after its last struct."""

    items: list[Struct] = field(default_factory=list)
    clocks: dict[int, int] = field(default_factory=dict)


class _Reader:
    """The update's bytes and where reading is; every length is checked against the end."""

    def __init__(self, data: bytes, limits: bool) -> None:
        self.data = data
        self.size = len(data)
        self.pos = 0
        self.limits = limits
        self.max_depth = MAX_VALUE_DEPTH if limits else sys.maxsize
        self.max_bytes = MAX_VALUE_BYTES if limits else sys.maxsize

    def refuse(self, reason: str) -> None:
        """Refuse what a peer may not send; what is already stored is read on regardless."""
        if self.limits:
            raise UpdateRefused(reason)

    def u8(self) -> int:
        pos = self.pos
        if pos >= self.size:
            raise MalformedUpdate("truncated")
        self.pos = pos + 1
        return self.data[pos]

    def uint(self) -> int:
        """lib0 readVarUint: seven bits a byte, low first; past 2**53 browsers refuse it."""
        data, pos = self.data, self.pos
        if pos < self.size and data[pos] < 0x80:  # most numbers here are small
            self.pos = pos + 1
            return data[pos]
        value, shift = 0, 0
        while True:
            if pos >= self.size:
                raise MalformedUpdate("truncated number")
            byte = data[pos]
            pos += 1
            value |= (byte & 0x7F) << shift
            if byte < 0x80:
                break
            shift += 7
            if shift > 56:
                raise MalformedUpdate("number too long")
        if value > MAX_SAFE_INTEGER:
            raise MalformedUpdate("number past 2**53")
        self.pos = pos
        return value

    def int_(self) -> None:
        """lib0 readVarInt (sign and six bits first): read past, its value is of no interest."""
        first = self.u8()
        if first & 0x80 and self.uint() * 64 + (first & 0x3F) > MAX_SAFE_INTEGER:
            raise MalformedUpdate("number past 2**53")

    def sized(self) -> bytes:
        """Length-prefixed bytes: one value, so within ``max_bytes``."""
        length = self.uint()
        if length > self.max_bytes:
            raise UpdateRefused(f"a value of {length} bytes: the limit is {MAX_VALUE_BYTES}")
        start = self.pos
        self.pos = end = start + length
        if end > self.size:
            raise MalformedUpdate("length beyond the end of the update")
        return self.data[start:end]

    def text(self) -> str:
        raw = self.sized()
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise MalformedUpdate("text is not UTF-8") from exc

    def json_text(self) -> None:
        """JSON text (formats and embeds), which yrs parses: nested at most ``max_depth``."""
        depth = deepest = 0
        for bracket in _JSON_BRACKET.finditer(_JSON_STRING.sub("", self.text())):
            depth += 1 if bracket[0] in "[{" else -1
            deepest = max(deepest, depth)
        if deepest > self.max_depth:
            raise UpdateRefused(f"JSON nested {deepest} deep: the limit is {MAX_VALUE_DEPTH}")

    def value(self) -> None:
        """One plain value (lib0 readAny), walked with a stack: for each open list the entries it
        still holds, for each open object the same count negated (a key comes before each).
        The common values (numbers, short strings) are read inline: this runs for every one."""
        data, size = self.data, self.size
        start = pos = self.pos
        levels: list[int] = []
        while True:
            if pos >= size:
                raise MalformedUpdate("truncated value")
            tag = data[pos]
            pos += 1
            width = _FIXED.get(tag)
            if width is not None:
                pos += width
            elif tag == _INT:  # lib0 readVarInt: sign and six bits, then seven a byte
                if pos >= size:
                    raise MalformedUpdate("truncated number")
                first = data[pos]
                pos += 1
                if first & 0x80:
                    self.pos = pos
                    if self.uint() * 64 + (first & 0x3F) > MAX_SAFE_INTEGER:
                        raise MalformedUpdate("number past 2**53")
                    pos = self.pos
            elif tag in (_STR, _BYTES):
                self.pos = pos
                if tag == _STR:
                    self.text()
                else:
                    self.sized()
                pos = self.pos
            elif tag in (_ARRAY, _OBJECT):
                self.pos = pos
                count = self.uint()
                pos = self.pos
                if count > size - pos:  # each entry takes a byte at least
                    raise MalformedUpdate("more entries than bytes")
                if len(levels) >= self.max_depth:
                    raise UpdateRefused(f"a value nested past {MAX_VALUE_DEPTH} levels")
                if count:
                    levels.append(count if tag == _ARRAY else -count)
            else:
                raise MalformedUpdate(f"no value has tag {tag}")
            while levels:  # on to the next entry of the innermost open level, if any
                left = levels[-1]
                if left > 0:
                    levels[-1] = left - 1
                    break
                if left < 0:
                    levels[-1] = left + 1
                    self.pos = pos
                    self.text()
                    pos = self.pos
                    break
                levels.pop()
            else:
                break
        if pos > size:
            raise MalformedUpdate("truncated value")
        self.pos = pos
        if pos - start > self.max_bytes:
            raise UpdateRefused(f"a value of {pos - start} bytes: the limit is {MAX_VALUE_BYTES}")

    def content(self, kind: int) -> int:
        """Read an item's content; returns its length in clock units."""
        if kind == _ANY:
            count = self.uint()
            for _ in range(count):
                self.value()
            return count
        if kind == _STRING:  # Yjs counts UTF-16 units: two for a character past U+FFFF
            raw = self.sized()
            try:
                length = len(raw.decode("utf-8"))
            except UnicodeDecodeError as exc:
                raise MalformedUpdate("text is not UTF-8") from exc
            return length + len(raw) - len(raw.translate(None, _NON_BMP_LEADS))
        if kind == _DELETED:
            return self.uint()
        if kind == _BINARY:
            self.sized()
        elif kind == _EMBED:
            self.json_text()
        elif kind == _FORMAT:
            self.text()
            self.json_text()
        elif kind == _TYPE:
            type_ref = self.u8()  # yrs reads one byte where Yjs reads a number: equal below 128
            if type_ref not in _TYPES:
                self.refuse(f"shared type kind {type_ref} has no place in our documents")
                if type_ref == _XML_ELEMENT:  # stored, so as yrs writes it: a hook has no name
                    self.text()
                elif type_ref == _WEAK_LINK:
                    raise MalformedUpdate("a weak link: not read here")
        elif kind == _JSON:
            self.refuse("legacy JSON content (yrs and Yjs read it differently)")
            count = self.uint()  # as yrs writes it: one text a value
            for _ in range(count):
                self.text()
            return count
        elif kind == _DOC:
            self.refuse("subdocuments have no place in our documents")
            self.text()
            self.value()
        return 1

    def id(self) -> ID:
        return self.uint(), self.uint()


def read_update(update: bytes, *, limits: bool = True) -> Shape:
    """The items of an update; raises MalformedUpdate, or UpdateRefused past the limits
    (``limits=False`` for what is already stored: read, never refused for its size)."""
    reader = _Reader(update, limits)
    shape = Shape()
    items = shape.items
    for _ in range(reader.uint()):
        count, client, clock = reader.uint(), reader.uint(), reader.uint()
        if client in shape.clocks:
            reader.refuse("a client listed twice (yrs and Yjs read it differently)")
        for _ in range(count):
            info = reader.u8()
            kind = info & 0x1F
            if info in (_GC, _SKIP):
                length = reader.uint()
                if info == _GC:
                    items.append(Struct(client, clock, length, None, None, None, True))
            elif kind == _GC or kind >= _SKIP:
                raise MalformedUpdate(f"no struct has info {info}")
            else:
                origin = reader.id() if info & 0x80 else None
                right = reader.id() if info & 0x40 else None
                parent: str | ID | None = None
                if origin is None and right is None:
                    parent = reader.text() if reader.uint() == 1 else reader.id()
                    if info & 0x20:
                        reader.text()  # the key in a map
                length = reader.content(kind)
                if length:
                    items.append(Struct(client, clock, length, origin, right, parent))
                else:
                    reader.refuse("an empty item")
            clock += length
            if clock > MAX_CLOCK:
                reader.refuse("clocks past 32 bits")
        shape.clocks[client] = clock
    for _ in range(reader.uint()):  # the delete set
        reader.uint()
        for _ in range(reader.uint()):
            clock, length = reader.uint(), reader.uint()
            if clock + length > MAX_CLOCK:
                reader.refuse("a deletion past 32-bit clocks")
    if reader.pos != len(update):
        raise MalformedUpdate("bytes after the update")
    return shape
