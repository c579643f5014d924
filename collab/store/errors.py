"""What each engine raises, grouped by what the caller should do about it."""

from __future__ import annotations

import sqlite3

import psycopg

# A uniqueness, reference or CHECK constraint refused the row.
INTEGRITY_ERRORS: tuple[type[Exception], ...] = (sqlite3.IntegrityError, psycopg.IntegrityError)

# A row the database will never take, however often it is tried: text that is not Unicode
# (or, on PostgreSQL, holds NUL), a number past the column's integer, a broken reference, a
# value of no SQL type. The database refusing for now (SQLite locked, full, I/O; PostgreSQL
# unreachable, restarting, shut down by an administrator, the connection lost) is an
# OperationalError of either engine, or psycopg's InterfaceError (a closed connection): none
# of these, so that batch waits and is tried again.
DATA_ERRORS: tuple[type[Exception], ...] = (
    sqlite3.InterfaceError,
    sqlite3.ProgrammingError,
    sqlite3.IntegrityError,
    sqlite3.DataError,
    psycopg.IntegrityError,
    psycopg.DataError,
    psycopg.ProgrammingError,
    ValueError,  # UnicodeEncodeError is one
    OverflowError,
    TypeError,
)
