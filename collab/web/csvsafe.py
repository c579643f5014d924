"""CSV that a spreadsheet opens as data: no cell the app writes is read as a formula.

Text typed by anyone (a username at a failed sign-in, a meeting's notes) ends up in exports
that administrators and coordinators open in Excel or LibreOffice, which run a cell starting
with ``=``, ``+``, ``-`` or ``@`` as a formula (``=HYPERLINK(...)``, DDE ``=cmd|...``); a leading
tab or carriage return can hide such a start. Following the OWASP advice on CSV injection,
every such text cell is prefixed with a single quote, which spreadsheets show as text.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Sequence

# The first characters that make a spreadsheet read a cell as a formula (OWASP, CSV injection).
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def safe_cell(value: object) -> object:
    """``value`` as a CSV cell: text that a spreadsheet would run gets a leading ``'``.

    Numbers and empty cells are written as they are: a number is never a formula.
    """
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value


def csv_text(header: Sequence[str], rows: Iterable[Sequence[object]]) -> str:
    """The whole CSV document: the header, then each row, every cell made safe."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow([safe_cell(name) for name in header])
    writer.writerows([safe_cell(value) for value in row] for row in rows)
    return out.getvalue()
