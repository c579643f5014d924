"""The migrations of collab.store.migrations as PostgreSQL runs them.

Most translate mechanically (collab.store.dialect.schema). Two cannot: schema 2's append-only
triggers (PostgreSQL's triggers call a function), and schema 15's rebuild of ``cases`` to
change a CHECK, which PostgreSQL does in place (and, unlike SQLite with foreign keys off, would
refuse: other tables reference ``cases``).
"""

from __future__ import annotations

from collab.store import dialect
from collab.store.migrations import MIGRATIONS

_AUDIT_MARK = "-- Append-only"

_AUDIT_TRIGGERS = """
    CREATE FUNCTION audit_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            RAISE EXCEPTION 'the audit log is append-only' USING ERRCODE = 'integrity_constraint_violation';
        END;
    $$;
    CREATE TRIGGER audit_no_update BEFORE UPDATE ON audit
        FOR EACH ROW EXECUTE FUNCTION audit_append_only();
    CREATE TRIGGER audit_no_delete BEFORE DELETE ON audit
        FOR EACH ROW EXECUTE FUNCTION audit_append_only();
"""

_CASES_STATUS = """
    ALTER TABLE cases DROP CONSTRAINT cases_status_check;
    ALTER TABLE cases ADD CONSTRAINT cases_status_check
        CHECK (status IN ('new', 'in review', 'ready for MDT', 'reported'));
"""


def _schema_2() -> str:
    sqlite_script = MIGRATIONS[1]
    assert _AUDIT_MARK in sqlite_script
    return dialect.schema(sqlite_script.split(_AUDIT_MARK)[0]) + _AUDIT_TRIGGERS


def _schema_15() -> str:
    # Everything after the rebuild (indexes, case notes) translates as it is.
    rest = MIGRATIONS[14].split("ALTER TABLE cases_rebuilt RENAME TO cases;")[1]
    return _CASES_STATUS + dialect.schema(rest)


def pg_migration(number: int) -> str:
    """The PostgreSQL script that takes a database from schema ``number - 1`` to ``number``."""
    if number == 2:
        return _schema_2()
    if number == 15:
        return _schema_15()
    return dialect.schema(MIGRATIONS[number - 1])
