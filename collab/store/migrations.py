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
    # 2: people, sessions, API tokens, patient details of cases, sharing, the audit log.
    """
    CREATE TABLE users (
        id INTEGER PRIMARY KEY,
        username TEXT NOT NULL UNIQUE,
        display_name TEXT NOT NULL,
        org_id INTEGER NOT NULL REFERENCES organisations(id),
        role TEXT NOT NULL CHECK (role IN ('admin', 'pathologist', 'trainee', 'clinician', 'student')),
        specialty TEXT,
        password_hash TEXT NOT NULL,
        created TEXT NOT NULL
    );
    CREATE TABLE sessions (
        id_hash TEXT PRIMARY KEY,
        user_id INTEGER NOT NULL REFERENCES users(id),
        csrf TEXT NOT NULL,
        created TEXT NOT NULL,
        expires TEXT NOT NULL
    );
    CREATE TABLE api_tokens (
        id INTEGER PRIMARY KEY,
        user_id INTEGER NOT NULL REFERENCES users(id),
        token_hash TEXT NOT NULL UNIQUE,
        created TEXT NOT NULL
    );
    ALTER TABLE cases ADD COLUMN patient_name TEXT;
    ALTER TABLE cases ADD COLUMN nhs_number TEXT;
    ALTER TABLE cases ADD COLUMN date_of_birth TEXT;
    ALTER TABLE cases ADD COLUMN specimen TEXT;
    ALTER TABLE cases ADD COLUMN clinical_details TEXT;
    ALTER TABLE cases ADD COLUMN assigned_to INTEGER REFERENCES users(id);
    CREATE TABLE case_shares (
        id INTEGER PRIMARY KEY,
        case_id TEXT NOT NULL REFERENCES cases(id),
        user_id INTEGER REFERENCES users(id),
        org_id INTEGER REFERENCES organisations(id),
        contributing INTEGER NOT NULL,
        created TEXT NOT NULL,
        revoked TEXT,
        CHECK ((user_id IS NULL) <> (org_id IS NULL))
    );
    CREATE INDEX shares_by_case ON case_shares(case_id);
    CREATE TABLE audit (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        at TEXT NOT NULL,
        event TEXT NOT NULL,
        user_id INTEGER,
        username TEXT,
        org_id INTEGER,
        client TEXT,
        case_id TEXT,
        slide_id TEXT,
        detail TEXT
    );
    -- Append-only: the log can grow, never change.
    CREATE TRIGGER audit_no_update BEFORE UPDATE ON audit
        BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
    CREATE TRIGGER audit_no_delete BEFORE DELETE ON audit
        BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
    """,
    # 3: the shared document of each case: a snapshot and the updates since.
    """
    CREATE TABLE doc_snapshots (
        case_id TEXT PRIMARY KEY REFERENCES cases(id),
        state BLOB NOT NULL,
        upto INTEGER NOT NULL,
        saved TEXT NOT NULL
    );
    CREATE TABLE doc_updates (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        case_id TEXT NOT NULL REFERENCES cases(id),
        update_data BLOB NOT NULL
    );
    CREATE INDEX doc_updates_by_case ON doc_updates(case_id, id);
    """,
    # 4: second opinions. A share made for a request names it in ``source`` ('opinion:{id}')
    # and lives as long as the request; NULL is a share made by hand.
    """
    ALTER TABLE case_shares ADD COLUMN source TEXT;
    CREATE INDEX shares_by_source ON case_shares(source);
    CREATE TABLE opinion_requests (
        id INTEGER PRIMARY KEY,
        case_id TEXT NOT NULL REFERENCES cases(id),
        requested_by INTEGER NOT NULL REFERENCES users(id),
        to_user INTEGER REFERENCES users(id),
        to_org INTEGER REFERENCES organisations(id),
        question TEXT NOT NULL,
        urgent INTEGER NOT NULL DEFAULT 0,
        state TEXT NOT NULL DEFAULT 'requested'
            CHECK (state IN ('requested', 'accepted', 'answered', 'declined', 'withdrawn')),
        accepted_by INTEGER REFERENCES users(id),
        answered_by INTEGER REFERENCES users(id),
        opinion TEXT,
        created TEXT NOT NULL,
        updated TEXT NOT NULL,
        CHECK ((to_user IS NULL) <> (to_org IS NULL))
    );
    CREATE INDEX opinions_to_user ON opinion_requests(to_user, state);
    CREATE INDEX opinions_to_org ON opinion_requests(to_org, state);
    CREATE INDEX opinions_by_case ON opinion_requests(case_id);
    CREATE INDEX opinions_by_requester ON opinion_requests(requested_by);
    """,
    # 5: which person each Yjs client id of a case's document belongs to (from their awareness),
    # so that an update replaying someone else's lost edits can be told from a forgery.
    """
    CREATE TABLE doc_clients (
        case_id TEXT NOT NULL REFERENCES cases(id),
        client_id INTEGER NOT NULL,
        user_id INTEGER NOT NULL REFERENCES users(id),
        PRIMARY KEY (case_id, client_id)
    );
    """,
    # 6: MDT meetings: who takes part, the ordered agenda, and the outcome recorded for each case.
    # Agenda cases are opened to participants of other organisations by shares whose ``source``
    # is 'meeting:{id}'.
    """
    CREATE TABLE meetings (
        id TEXT PRIMARY KEY,
        name TEXT NOT NULL,
        starts TEXT NOT NULL,
        org_id INTEGER NOT NULL REFERENCES organisations(id),
        chair INTEGER NOT NULL REFERENCES users(id),
        coordinator INTEGER NOT NULL REFERENCES users(id),
        created TEXT NOT NULL
    );
    CREATE INDEX meetings_by_org ON meetings(org_id, starts);
    CREATE TABLE meeting_attendees (
        meeting_id TEXT NOT NULL REFERENCES meetings(id),
        user_id INTEGER NOT NULL REFERENCES users(id),
        attended TEXT,
        PRIMARY KEY (meeting_id, user_id)
    );
    CREATE INDEX meeting_attendees_by_user ON meeting_attendees(user_id);
    CREATE TABLE meeting_cases (
        meeting_id TEXT NOT NULL REFERENCES meetings(id),
        case_id TEXT NOT NULL REFERENCES cases(id),
        position INTEGER NOT NULL,
        planned_minutes INTEGER NOT NULL DEFAULT 3,
        PRIMARY KEY (meeting_id, case_id)
    );
    CREATE TABLE meeting_outcomes (
        meeting_id TEXT NOT NULL REFERENCES meetings(id),
        case_id TEXT NOT NULL REFERENCES cases(id),
        decision TEXT NOT NULL CHECK (decision IN ('surgery', 'oncology', 'radiotherapy', 'surveillance',
            'further investigation', 'discharge', 'other')),
        notes TEXT NOT NULL DEFAULT '',
        recorded_by INTEGER NOT NULL REFERENCES users(id),
        recorded TEXT NOT NULL,
        signed_off_by INTEGER REFERENCES users(id),
        signed_off TEXT,
        PRIMARY KEY (meeting_id, case_id)
    );
    """,
    # 7: a closed meeting; closing revokes the shares that opened its agenda cases.
    """
    CREATE TABLE meeting_closures (
        meeting_id TEXT PRIMARY KEY REFERENCES meetings(id),
        closed TEXT NOT NULL,
        closed_by INTEGER NOT NULL REFERENCES users(id)
    );
    """,
    # The presenter's path through a case (collab.sync.path), for the catch-up timeline.
    """
    CREATE TABLE presenter_path (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        case_id TEXT NOT NULL REFERENCES cases(id),
        at TEXT NOT NULL,
        user_id INTEGER NOT NULL REFERENCES users(id),
        slide TEXT NOT NULL,
        x REAL NOT NULL,
        y REAL NOT NULL,
        width REAL NOT NULL,
        rotation REAL NOT NULL
    );
    CREATE INDEX presenter_path_by_case ON presenter_path(case_id, id);
    """,
    # The live meeting room: each time an agenda case is on screen. The row without an end is
    # the case being discussed now; at most one per meeting.
    """
    CREATE TABLE meeting_presentations (
        id INTEGER PRIMARY KEY,
        meeting_id TEXT NOT NULL REFERENCES meetings(id),
        case_id TEXT NOT NULL REFERENCES cases(id),
        started TEXT NOT NULL,
        ended TEXT,
        presented_by INTEGER NOT NULL REFERENCES users(id)
    );
    CREATE INDEX meeting_presentations_by_meeting ON meeting_presentations(meeting_id, id);
    CREATE UNIQUE INDEX meeting_presentations_current ON meeting_presentations(meeting_id)
        WHERE ended IS NULL;
    """,
    # Teaching sessions: an educator's ordered cases shown to students under per-session aliases,
    # the students who joined (guests or signed-in students), quiz answers, and the session's own
    # shared document (its own tables: guests' peer ids are negative, not users).
    """
    CREATE TABLE teaching_sessions (
        id TEXT PRIMARY KEY,
        title TEXT NOT NULL,
        educator INTEGER NOT NULL REFERENCES users(id),
        code TEXT NOT NULL,
        created TEXT NOT NULL,
        closed TEXT,
        pen INTEGER
    );
    CREATE UNIQUE INDEX teaching_open_codes ON teaching_sessions(code) WHERE closed IS NULL;
    CREATE INDEX teaching_by_educator ON teaching_sessions(educator, created);
    CREATE TABLE teaching_slides (
        session_id TEXT NOT NULL REFERENCES teaching_sessions(id),
        alias TEXT NOT NULL,
        item INTEGER NOT NULL,
        number INTEGER NOT NULL,
        case_id TEXT NOT NULL REFERENCES cases(id),
        slide_id TEXT NOT NULL REFERENCES slides(id),
        width INTEGER NOT NULL,
        height INTEGER NOT NULL,
        PRIMARY KEY (session_id, alias),
        UNIQUE (session_id, item, number)
    );
    CREATE TABLE teaching_participants (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        session_id TEXT NOT NULL REFERENCES teaching_sessions(id),
        display_name TEXT NOT NULL,
        token_hash TEXT NOT NULL UNIQUE,
        user_id INTEGER REFERENCES users(id),
        joined TEXT NOT NULL
    );
    CREATE INDEX teaching_participants_by_session ON teaching_participants(session_id);
    CREATE TABLE teaching_answers (
        session_id TEXT NOT NULL REFERENCES teaching_sessions(id),
        question INTEGER NOT NULL,
        participant INTEGER NOT NULL REFERENCES teaching_participants(id),
        slide TEXT NOT NULL,
        x REAL NOT NULL,
        y REAL NOT NULL,
        answered TEXT NOT NULL,
        PRIMARY KEY (session_id, question, participant)
    );
    CREATE TABLE teaching_doc_snapshots (
        session_id TEXT PRIMARY KEY REFERENCES teaching_sessions(id),
        state BLOB NOT NULL,
        upto INTEGER NOT NULL,
        saved TEXT NOT NULL
    );
    CREATE TABLE teaching_doc_updates (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        session_id TEXT NOT NULL REFERENCES teaching_sessions(id),
        update_data BLOB NOT NULL
    );
    CREATE INDEX teaching_doc_updates_by_session ON teaching_doc_updates(session_id, id);
    CREATE TABLE teaching_doc_clients (
        session_id TEXT NOT NULL REFERENCES teaching_sessions(id),
        client_id INTEGER NOT NULL,
        peer_id INTEGER NOT NULL,
        PRIMARY KEY (session_id, client_id)
    );
    """,
    # API tokens: when each was last used (written at most once a minute), and revocation,
    # which keeps the row so that the list of a person's tokens still shows it.
    """
    ALTER TABLE api_tokens ADD COLUMN last_used TEXT;
    ALTER TABLE api_tokens ADD COLUMN revoked TEXT;
    CREATE INDEX api_tokens_by_user ON api_tokens(user_id);
    """,
    # Meetings planned in the browser: cancelled or not, weekly series, each agenda case's MDT
    # question and presenting pathologist, and several decisions per outcome (a JSON list; the
    # old one-decision column keeps its CHECK, so it holds the first known decision or 'other').
    """
    ALTER TABLE meetings ADD COLUMN status TEXT NOT NULL DEFAULT 'scheduled';
    ALTER TABLE meetings ADD COLUMN series_id TEXT;
    ALTER TABLE meeting_cases ADD COLUMN question TEXT NOT NULL DEFAULT '';
    ALTER TABLE meeting_cases ADD COLUMN presenter INTEGER REFERENCES users(id);
    ALTER TABLE meeting_outcomes ADD COLUMN decisions TEXT;
    """,
    # Accounts administered in the browser: deactivation (signs nobody in while set), one-time
    # invitations (only a hash of the link's token; single use, with an expiry), and API tokens
    # with a scope ("read" or "write"; NULL: full rights, as every token made before) and an expiry.
    """
    ALTER TABLE users ADD COLUMN deactivated TEXT;
    CREATE TABLE invites (
        id INTEGER PRIMARY KEY,
        user_id INTEGER NOT NULL REFERENCES users(id),
        token_hash TEXT NOT NULL UNIQUE,
        created TEXT NOT NULL,
        expires TEXT NOT NULL,
        used TEXT,
        created_by INTEGER REFERENCES users(id)
    );
    CREATE INDEX invites_by_user ON invites(user_id);
    ALTER TABLE api_tokens ADD COLUMN scope TEXT;
    ALTER TABLE api_tokens ADD COLUMN expires TEXT;
    """,
    # Slides arriving from a browser or a scanner's import folder: resumable (tus) uploads in
    # progress, and slides that belong to no case yet (an organisation's, until attached).
    """
    CREATE TABLE uploads (
        id TEXT PRIMARY KEY,
        user_id INTEGER NOT NULL REFERENCES users(id),
        case_id TEXT REFERENCES cases(id),
        filename TEXT NOT NULL,
        length INTEGER NOT NULL,
        state TEXT NOT NULL DEFAULT 'receiving',
        slide_id TEXT,
        refusal TEXT,
        created TEXT NOT NULL,
        expires TEXT NOT NULL
    );
    CREATE INDEX uploads_by_expiry ON uploads(state, expires);
    CREATE TABLE unassigned_slides (
        id TEXT PRIMARY KEY,
        org_id INTEGER NOT NULL REFERENCES organisations(id),
        path TEXT NOT NULL,
        source TEXT NOT NULL,
        file_size INTEGER NOT NULL,
        mtime_ns INTEGER NOT NULL,
        filename TEXT NOT NULL,
        width INTEGER,
        height INTEGER,
        vendor TEXT,
        barcode TEXT,
        has_label INTEGER NOT NULL DEFAULT 0,
        refusal TEXT,
        added TEXT NOT NULL,
        attached_slide TEXT,
        UNIQUE (path, file_size, mtime_ns)
    );
    CREATE INDEX unassigned_by_org ON unassigned_slides(org_id, attached_slide);
    """,
    # Cases worked in the browser: the status 'ready for MDT' (between 'in review' and 'reported'),
    # dated notes on a case, and indexes for the worklist's one query per page.
    # SQLite cannot alter a CHECK, so the cases table is rebuilt (CREATE, copy, DROP, RENAME: the
    # documented procedure). A rebuild rather than dropping the CHECK: the database keeps refusing
    # a status the code does not know, whoever writes. Safe here because migrations run before
    # collab.store.database turns foreign keys on: dropping the old table leaves the references of
    # slides, shares and meetings alone, and they name the rebuilt table once it is renamed. The
    # columns are listed by name, so that a column added by an earlier entry must be listed here.
    """
    CREATE TABLE cases_rebuilt (
        id TEXT PRIMARY KEY,
        accession TEXT NOT NULL UNIQUE,
        org_id INTEGER NOT NULL REFERENCES organisations(id),
        priority TEXT NOT NULL CHECK (priority IN ('urgent', '2ww', 'routine')),
        status TEXT NOT NULL DEFAULT 'new'
            CHECK (status IN ('new', 'in review', 'ready for MDT', 'reported')),
        created TEXT NOT NULL,
        patient_name TEXT,
        nhs_number TEXT,
        date_of_birth TEXT,
        specimen TEXT,
        clinical_details TEXT,
        assigned_to INTEGER REFERENCES users(id)
    );
    INSERT INTO cases_rebuilt (id, accession, org_id, priority, status, created, patient_name,
        nhs_number, date_of_birth, specimen, clinical_details, assigned_to)
        SELECT id, accession, org_id, priority, status, created, patient_name,
        nhs_number, date_of_birth, specimen, clinical_details, assigned_to FROM cases;
    DROP TABLE cases;
    ALTER TABLE cases_rebuilt RENAME TO cases;
    CREATE INDEX cases_by_org ON cases(org_id);
    CREATE INDEX shares_by_user ON case_shares(user_id) WHERE revoked IS NULL;
    CREATE INDEX shares_by_org ON case_shares(org_id) WHERE revoked IS NULL;
    CREATE TABLE case_notes (
        id INTEGER PRIMARY KEY,
        case_id TEXT NOT NULL REFERENCES cases(id),
        author INTEGER NOT NULL REFERENCES users(id),
        body TEXT NOT NULL,
        created TEXT NOT NULL
    );
    CREATE INDEX case_notes_by_case ON case_notes(case_id, id);
    """,
    # Snapshots of slide regions (PNG files under the data directory's snapshots/): of a case,
    # or of a teaching session's slide (then no case: the file must not lead back to it), and
    # attached to a meeting's outcome of that case when ``meeting_id`` is set.
    """
    CREATE TABLE snapshots (
        id TEXT PRIMARY KEY,
        case_id TEXT REFERENCES cases(id),
        slide_id TEXT NOT NULL REFERENCES slides(id),
        teaching_id TEXT,
        made_by INTEGER NOT NULL REFERENCES users(id),
        made TEXT NOT NULL,
        x INTEGER NOT NULL,
        y INTEGER NOT NULL,
        width INTEGER NOT NULL,
        height INTEGER NOT NULL,
        image_width INTEGER NOT NULL,
        image_height INTEGER NOT NULL,
        caption TEXT NOT NULL DEFAULT '',
        meeting_id TEXT,
        CHECK ((case_id IS NULL) != (teaching_id IS NULL))
    );
    CREATE INDEX snapshots_by_case ON snapshots(case_id);
    CREATE INDEX snapshots_by_meeting ON snapshots(meeting_id, case_id) WHERE meeting_id IS NOT NULL;
    """,
    # Single sign-on (collab.web.sign_on): a sign-in under way, until its provider sends the
    # browser back (one use: the row is deleted as it is read), and who a provider's user is here.
    """
    CREATE TABLE oidc_flows (
        state_hash TEXT PRIMARY KEY,
        browser_hash TEXT NOT NULL,
        provider TEXT NOT NULL,
        nonce TEXT NOT NULL,
        verifier TEXT NOT NULL,
        next TEXT NOT NULL,
        expires TEXT NOT NULL
    );
    CREATE TABLE oidc_identities (
        issuer TEXT NOT NULL,
        subject TEXT NOT NULL,
        user_id INTEGER NOT NULL REFERENCES users(id),
        created TEXT NOT NULL,
        PRIMARY KEY (issuer, subject)
    );
    """,
    # Analyses of slides (collab.analysis): jobs waiting for or running in a worker process,
    # and results, from an analysis run here or posted by an outside tool (``source``). A result
    # is decision support: it never changes a case by itself.
    """
    CREATE TABLE analysis_jobs (
        id INTEGER PRIMARY KEY,
        slide_id TEXT NOT NULL REFERENCES slides(id),
        analysis TEXT NOT NULL,
        state TEXT NOT NULL DEFAULT 'queued'
            CHECK (state IN ('queued', 'running', 'done', 'failed', 'cancelled')),
        progress REAL NOT NULL DEFAULT 0,
        attempts INTEGER NOT NULL DEFAULT 0,
        requested_by INTEGER REFERENCES users(id),
        requested TEXT NOT NULL,
        started TEXT,
        heartbeat TEXT,
        finished TEXT,
        cancel INTEGER NOT NULL DEFAULT 0,
        error TEXT,
        result_id INTEGER
    );
    CREATE INDEX analysis_jobs_by_state ON analysis_jobs(state, id);
    CREATE INDEX analysis_jobs_by_slide ON analysis_jobs(slide_id, id);
    CREATE TABLE analysis_results (
        id INTEGER PRIMARY KEY,
        slide_id TEXT NOT NULL REFERENCES slides(id),
        analysis TEXT NOT NULL,
        version TEXT NOT NULL,
        source TEXT NOT NULL,
        made TEXT NOT NULL,
        job_id INTEGER REFERENCES analysis_jobs(id),
        result TEXT NOT NULL
    );
    CREATE INDEX analysis_results_by_slide ON analysis_results(slide_id, id);
    CREATE TABLE analysis_flags (
        id INTEGER PRIMARY KEY,
        result_id INTEGER NOT NULL REFERENCES analysis_results(id),
        slide_id TEXT NOT NULL REFERENCES slides(id),
        name TEXT NOT NULL,
        reason TEXT NOT NULL,
        review TEXT CHECK (review IN ('confirmed', 'dismissed')),
        reviewed_by INTEGER REFERENCES users(id),
        reviewed TEXT
    );
    CREATE INDEX analysis_flags_by_slide ON analysis_flags(slide_id, review);
    """,
    # Each result's scores as rows, so that the worklist shows and sorts by outside tools'
    # scores in one query (the result's JSON keeps them too).
    """
    CREATE TABLE analysis_scores (
        result_id INTEGER NOT NULL REFERENCES analysis_results(id),
        slide_id TEXT NOT NULL REFERENCES slides(id),
        name TEXT NOT NULL,
        value REAL NOT NULL
    );
    CREATE INDEX analysis_scores_by_slide ON analysis_scores(slide_id, result_id);
    """,
)
