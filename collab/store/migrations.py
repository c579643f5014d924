"""Schema versions, applied in order and recorded in ``PRAGMA user_version``.

Each entry upgrades the schema by one version. Never edit a released entry:
append a new one, so that an older database upgrades in place.
"""

from __future__ import annotations

MIGRATIONS: tuple[str, ...] = (
    # 1: organisations, cases and their slides.
    """
    CREATE TABLE organisations (
        id INTEGER PRIMARY KEY,
        name TEXT NOT NULL UNIQUE,
        network TEXT
    );
    CREATE TABLE cases (
        id TEXT PRIMARY KEY,
        accession TEXT NOT NULL UNIQUE,
        org_id INTEGER NOT NULL REFERENCES organisations(id),
        priority TEXT NOT NULL CHECK (priority IN ('urgent', '2ww', 'routine')),
        status TEXT NOT NULL DEFAULT 'new' CHECK (status IN ('new', 'in review', 'reported')),
        created TEXT NOT NULL
    );
    CREATE TABLE slides (
        id TEXT PRIMARY KEY,
        case_id TEXT NOT NULL REFERENCES cases(id),
        path TEXT NOT NULL,
        stain TEXT,
        width INTEGER NOT NULL,
        height INTEGER NOT NULL,
        vendor TEXT,
        added TEXT NOT NULL,
        UNIQUE (case_id, path)
    );
    CREATE INDEX slides_by_case ON slides(case_id);
    """,
)
