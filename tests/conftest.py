"""Shared fixtures: real slides, generated slides, real servers on free ports."""

from __future__ import annotations

import asyncio
import contextlib
import io
import logging
import os
import re
import socket
import sqlite3
import subprocess
import sys
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import psycopg
import pytest
import tifffile

from tests import postgres

REPO = Path(__file__).resolve().parent.parent
SHARED_SLIDES = Path(os.environ.get("COLLAB_SHARED_SLIDES", REPO.parent / "shared" / "slides"))

# The real slides beside the repository; tests that need them skip when absent.
REAL_SLIDES = {
    "CMU-1-Small-Region.svs": SHARED_SLIDES / "CMU-1-Small-Region.svs",
    "tcga-cr-7395-01a-01-ts1.svs": SHARED_SLIDES / "tcga-cr-7395-01a-01-ts1.svs",
    "test3-DAPI-2-387.ndpi": SHARED_SLIDES / "test3-DAPI-2-387.ndpi",
    "boxes.tiff": SHARED_SLIDES / "boxes.tiff",
    "small.svs": SHARED_SLIDES / "small.svs",
    "dicom-boxes": SHARED_SLIDES / "dicom-boxes",
    "dicom-cmu-1-small-region": SHARED_SLIDES / "dicom-cmu-1-small-region",
}


# The engine every test's database is on: COLLAB_TEST_DATABASE=postgresql runs the same tests
# against a real PostgreSQL (tests/postgres.py), each test with a fresh database whose URL is in
# $COLLAB_DATABASE_URL, which the command line and servers started by tests read.
ON_POSTGRES = os.environ.get("COLLAB_TEST_DATABASE", "sqlite") == "postgresql"


def sqlite_only(why: str) -> pytest.MarkDecorator:
    """Skip a test about the SQLite file itself when the tests run on PostgreSQL."""
    return pytest.mark.skipif(ON_POSTGRES, reason=f"SQLite only: {why}")


# On PostgreSQL: the session's cluster, and the database each data dir uses. A data dir's
# database is the one of the test that first used it, or, for a data dir made by a fixture
# wider than one test (a module's running server), one of its own, kept to the session's end:
# the command line, servers and checks on that data dir all reach the same database.
_CLUSTER: list[postgres.Cluster] = []
_DATA_DIR_DATABASES: dict[Path, str] = {}


@pytest.fixture(scope="session", autouse=True)
def pg_cluster() -> Iterator[postgres.Cluster | None]:
    """One PostgreSQL cluster for the session, stopped and removed at its end (none on SQLite).
    Autouse and session-wide, so that it is up before any module's fixtures."""
    if not ON_POSTGRES:
        yield None
        return
    why = postgres.available()
    if why:
        pytest.fail(f"COLLAB_TEST_DATABASE=postgresql, but {why}")
    cluster = postgres.Cluster()
    try:
        cluster.start()
        cluster.make_template()
        _CLUSTER.append(cluster)
        yield cluster
    finally:
        _CLUSTER.clear()
        cluster.remove()


@pytest.fixture(autouse=True)
def database_url(monkeypatch: pytest.MonkeyPatch) -> Iterator[str | None]:
    """On PostgreSQL: a fresh database for this test, named by $COLLAB_DATABASE_URL; else None."""
    if not ON_POSTGRES:
        yield None
        return
    cluster = _CLUSTER[0]
    name = cluster.new_database()
    url = cluster.url(name)
    monkeypatch.setenv("COLLAB_DATABASE_URL", url)
    yield url
    for data_dir in [d for d, u in _DATA_DIR_DATABASES.items() if u == url]:
        del _DATA_DIR_DATABASES[data_dir]
    cluster.drop_database(name)


def database_for(data_dir: Path) -> str | None:
    """The database URL of a data dir on PostgreSQL (None: its SQLite file)."""
    if not ON_POSTGRES:
        return None
    key = data_dir.resolve()
    url = _DATA_DIR_DATABASES.get(key)
    if url is None:
        url = os.environ.get("COLLAB_DATABASE_URL") or _CLUSTER[0].url(_CLUSTER[0].new_database())
        _DATA_DIR_DATABASES[key] = url
    return url


def use_database(data_dir: Path, url: str) -> None:
    """On PostgreSQL: commands and servers on ``data_dir`` use the database at ``url`` (one the
    test made, e.g. restored from a dump; the test drops it)."""
    _DATA_DIR_DATABASES[data_dir.resolve()] = url


def environment_for(data_dir: Path) -> dict[str, str]:
    """The environment of a command or server on ``data_dir``."""
    url = database_for(data_dir)
    return {**os.environ, "COLLAB_DATABASE_URL": url} if url else dict(os.environ)


def db_url() -> str | None:
    """The database URL of the running test (None: the SQLite file in the data dir)."""
    return os.environ.get("COLLAB_DATABASE_URL") if ON_POSTGRES else None


def connect_db(data_dir: Path) -> Any:
    """A plain (sync) connection to the data dir's database, as ``sqlite3.connect`` gives: on
    PostgreSQL one that takes the same SQL (tests/postgres.py)."""
    url = database_for(data_dir)
    if url:
        return postgres.SyncDb(url)
    return sqlite3.connect(data_dir / "collab.sqlite3")


# What either engine raises when a constraint or trigger refuses a change.
INTEGRITY_ERRORS: tuple[type[Exception], ...] = (sqlite3.IntegrityError, psycopg.errors.IntegrityError)


def table_names(db: Any) -> list[str]:
    """The tables of a database opened with ``connect_db``."""
    if isinstance(db, postgres.SyncDb):
        rows = db.execute("SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'")
    else:
        rows = db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
    return sorted(row[0] for row in rows)


def row_dict(cursor: Any) -> dict[str, Any] | None:
    """The next row of a cursor of either engine, by column name (None: no more rows)."""
    row = cursor.fetchone()
    return None if row is None else dict(zip([d[0] for d in cursor.description], row, strict=True))


def connect_file(database: Path) -> Any:
    """``connect_db`` for a test that names the SQLite file: closed when the block ends."""
    url = db_url()
    if url:
        return postgres.SyncDb(url)
    return contextlib.closing(sqlite3.connect(database))


def real_slide(name: str) -> Path:
    """A real slide from ../shared/slides, or skip the test."""
    path = REAL_SLIDES[name]
    if not path.exists():
        pytest.skip(f"{path} is not present")
    return path


# Servers the tests start run no analysis worker, and a new slide queues no analysis, unless a
# test asks for them (tests/test_analysis_jobs.py): otherwise analyses would take the CPU from
# every test that registers a slide.
os.environ.setdefault("COLLAB_ANALYSIS_WORKERS", "0")
os.environ.setdefault("COLLAB_ANALYSE_ON_REGISTRATION", "none")

# Commands run in a process of their own whatever the mode: the server; the commands whose tests
# are about processes (a restore refuses while another process holds the data dir); and slides,
# which hostile files reach (a crash in a C decoder must end that command, not the test run).
OWN_PROCESS = frozenset({"serve", "demo", "backup", "restore", "slides"})


def collab(*args: str, data_dir: Path, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    """Run the ``collab`` command line as a user would: its ``main`` with the same arguments,
    standard input and environment, its output and exit code captured. An administrative
    command runs in this process (a new interpreter costs 0.3 s, paid hundreds of times by the
    fixtures); see ``collab_process`` for the whole program in a process of its own."""
    if (
        args[0] in OWN_PROCESS
        or os.environ.get("COLLAB_TEST_CLI") == "process"
        or _loop_running()
        or threading.current_thread() is not threading.main_thread()  # stdout is the process's
    ):
        return collab_process(*args, data_dir=data_dir, stdin=stdin)
    from collab.cli import main

    argv = [*args, "--data-dir", str(data_dir)]
    out, err = io.StringIO(), io.StringIO()
    url, saved_url = database_for(data_dir), os.environ.get("COLLAB_DATABASE_URL")
    if url:
        os.environ["COLLAB_DATABASE_URL"] = url
    tifffile_log = logging.getLogger("tifffile")
    propagate = tifffile_log.propagate  # main() quiets it; the test process keeps its own
    saved_stdin = sys.stdin
    sys.stdin = io.StringIO(stdin or "")
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                code = main(argv)
            except SystemExit as exit_:  # argparse refusing the arguments
                code = exit_.code if isinstance(exit_.code, int) else 1
    finally:
        sys.stdin = saved_stdin
        tifffile_log.propagate = propagate
        if url:
            if saved_url is None:
                del os.environ["COLLAB_DATABASE_URL"]
            else:
                os.environ["COLLAB_DATABASE_URL"] = saved_url
    return subprocess.CompletedProcess(["collab", *argv], code, out.getvalue(), err.getvalue())


def collab_process(*args: str, data_dir: Path, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    """``python -m collab ...`` in a process of its own."""
    return subprocess.run(
        [sys.executable, "-m", "collab", *args, "--data-dir", str(data_dir)],
        env=environment_for(data_dir),
        capture_output=True,
        text=True,
        input=stdin,
        timeout=120,
    )


def _loop_running() -> bool:
    # main() runs its own event loop (asyncio.run), which cannot start inside a running one.
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Server:
    """A ``collab serve`` subprocess and a client for it."""

    url: str
    data_dir: Path
    process: subprocess.Popen[bytes]
    client: httpx.Client
    log_pump: threading.Thread

    def get(self, path: str, **kwargs: object) -> httpx.Response:
        return self.client.get(path, **kwargs)  # type: ignore[arg-type]


def start_server(data_dir: Path, port: int | None = None, *, args: Sequence[str] = ()) -> Server:
    """Start a real server on ``port`` (a free one if not given), with more ``collab serve`` options
    if given; returns once it says it is listening."""
    if port is None:
        port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "collab", "serve", "--data-dir", str(data_dir), "--port", str(port), *args],
        env=environment_for(data_dir),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    assert process.stderr is not None
    log = data_dir / "server.log"
    seen: list[bytes] = []
    ready = threading.Event()

    def pump() -> None:
        # Copies the server's log to a file; flags readiness on uvicorn's startup line.
        assert process.stderr is not None
        with log.open("ab") as out:
            for line in process.stderr:
                out.write(line)
                out.flush()
                seen.append(line)
                if b"Uvicorn running on" in line:
                    ready.set()
        ready.set()  # the process ended

    log_pump = threading.Thread(target=pump, daemon=True)
    log_pump.start()
    if not ready.wait(timeout=60) or process.poll() is not None:
        process.kill()
        process.wait()
        log_pump.join(timeout=10)
        process.stderr.close()
        raise RuntimeError("server did not start:\n" + b"".join(seen).decode(errors="replace"))
    url = f"http://127.0.0.1:{port}"
    return Server(url, data_dir, process, httpx.Client(base_url=url, timeout=30), log_pump)


def stop_server(server: Server) -> None:
    server.client.close()
    server.process.terminate()
    try:
        server.process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        server.process.kill()
        server.process.wait()
    server.log_pump.join(timeout=10)
    if server.process.stderr is not None:
        server.process.stderr.close()


@pytest.fixture
def servers() -> Iterator[list[Server]]:
    """Servers a test started (several, when it restarts one); all stopped at the end."""
    started: list[Server] = []
    yield started
    for server in started:
        if server.process.returncode is None:
            stop_server(server)


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    path = tmp_path / "data"
    path.mkdir()
    return path


PASSWORD = "correct horse battery"


def add_user(data_dir: Path, username: str, role: str, org: str, *extra: str) -> None:
    """Create a user through the CLI, password ``PASSWORD``."""
    result = collab(
        "users",
        "add",
        username,
        "--role",
        role,
        "--org",
        org,
        "--password-stdin",
        *extra,
        data_dir=data_dir,
        stdin=PASSWORD + "\n",
    )
    assert result.returncode == 0, result.stderr


def api_token(data_dir: Path, username: str) -> str:
    result = collab("users", "token", username, data_dir=data_dir)
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def seed_case(data_dir: Path) -> str:
    """Organisation ``North Trust``, its pathologist ``north.path`` and case ``S26-1``."""
    assert collab("orgs", "add", "North Trust", "--network", "North", data_dir=data_dir).returncode == 0
    add_user(data_dir, "north.path", "pathologist", "North Trust", "--name", "Dr North")
    result = collab("cases", "add", "S26-1", "--org", "North Trust", data_dir=data_dir)
    assert result.returncode == 0, result.stderr
    return "S26-1"


def room_people(
    data_dir: Path, *, clinician: bool = True, also: tuple[str, ...] = ()
) -> tuple[str, dict[str, str], dict[str, int]]:
    """On a data directory made by ``seed_case``: adds the trainee ``north.trainee`` (contributes)
    and, unless told not to, the clinician ``north.onc`` (reads). Returns case S26-1's id, API
    tokens of ``north.path``, those two and the users named in ``also``, and every user's id."""
    add_user(data_dir, "north.trainee", "trainee", "North Trust")
    if clinician:
        add_user(data_dir, "north.onc", "clinician", "North Trust", "--specialty", "oncology")
    names = ("north.path", "north.trainee", *(("north.onc",) if clinician else ()), *also)
    tokens = {name: api_token(data_dir, name) for name in names}
    with connect_db(data_dir) as db:
        case_id = db.execute("SELECT id FROM cases WHERE accession = 'S26-1'").fetchone()[0]
        ids = dict(db.execute("SELECT username, id FROM users").fetchall())
    return case_id, tokens, ids


@pytest.fixture
def case(data_dir: Path) -> str:
    """An organisation, a pathologist and a case (accession ``S26-1``) in a fresh data dir."""
    return seed_case(data_dir)


def signed_in(server: Server, username: str) -> Server:
    """The server's client, now sending that user's API token."""
    server.client.headers["Authorization"] = f"Bearer {api_token(server.data_dir, username)}"
    return server


@pytest.fixture
def server(data_dir: Path, case: str) -> Iterator[Server]:
    """A running server whose client is signed in as the pathologist of ``S26-1``'s trust."""
    running = start_server(data_dir)
    yield signed_in(running, "north.path")
    stop_server(running)


def add_slides(data_dir: Path, *paths: Path, accession: str = "S26-1") -> list[str]:
    """Register slides through the CLI; returns their ids."""
    result = collab("slides", "add", *map(str, paths), "--case", accession, data_dir=data_dir)
    assert result.returncode == 0, result.stderr
    return [line.split("\t")[0] for line in result.stdout.splitlines()]


def write_pyramid_tiff(
    path: Path,
    l0_width: int,
    l0_height: int,
    *,
    tile: int = 256,
    levels: int = 3,
    compression: str = "jpeg",
    seed: int = 0,
) -> Path:
    """A generic tiled pyramidal TIFF with a random smooth pattern (no patient data)."""
    rng = np.random.default_rng(seed)
    coarse = rng.integers(0, 256, (l0_height // 32 + 2, l0_width // 32 + 2, 3), dtype=np.uint8)
    ys = np.linspace(0, coarse.shape[0] - 1.001, l0_height)
    xs = np.linspace(0, coarse.shape[1] - 1.001, l0_width)
    base = coarse[ys.astype(int)][:, xs.astype(int)]
    # Fine structure so that a shifted or mis-scaled tile would be noticed.
    yy, xx = np.mgrid[0:l0_height, 0:l0_width]
    stripes = ((np.sin(xx / 3.0) + np.cos(yy / 5.0)) * 30).astype(np.int16)
    pixels = np.clip(base.astype(np.int16) + stripes[..., None], 0, 255).astype(np.uint8)
    with tifffile.TiffWriter(path) as tif:
        level = pixels
        for number in range(levels):
            # Reduced-resolution pages (NewSubfileType 1) make one pyramid, as scanners write.
            tif.write(
                level,
                tile=(tile, tile),
                compression=compression,
                photometric="rgb",
                subfiletype=1 if number else 0,
            )
            level = level[::2, ::2]
            if min(level.shape[:2]) < 16:
                break
    return path


def write_fake_svs(path: Path, *, seed: int = 0) -> Path:
    """A small Aperio-style SVS with a pyramid, a thumbnail, a label and a macro image."""
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 256, (1024, 1024, 3), dtype=np.uint8)
    head = "Aperio Image Library v12.0.0 \r\n"
    props = "|AppMag = 20|MPP = 0.5"
    with tifffile.TiffWriter(path) as tif:
        tif.write(
            base,
            tile=(256, 256),
            compression="jpeg",
            photometric="rgb",
            metadata=None,
            description=f"{head}1024x1024 [0,0 1024x1024] (256x256) JPEG/RGB Q=70{props}",
        )
        tif.write(
            base[::8, ::8],
            compression="jpeg",
            photometric="rgb",
            metadata=None,
            description=f"{head}1024x1024 -> 128x128 - {props}",
        )
        tif.write(
            base[::2, ::2],
            tile=(256, 256),
            compression="jpeg",
            photometric="rgb",
            metadata=None,
            description=f"{head}1024x1024 -> 512x512 - {props}",
        )
        # A label is where a patient's name would be printed on glass.
        tif.write(
            np.full((100, 120, 3), 200, np.uint8),
            compression="lzw",
            photometric="rgb",
            metadata=None,
            subfiletype=1,
            description=f"{head}label 120x100",
        )
        tif.write(
            np.full((100, 300, 3), 100, np.uint8),
            compression="jpeg",
            photometric="rgb",
            metadata=None,
            subfiletype=9,
            description=f"{head}macro 300x100",
        )
    return path


@dataclass
class Person:
    """One person signed in through the login form: a cookie session for pages and forms,
    and (when asked for) an API token for the websocket."""

    username: str
    client: httpx.Client
    csrf: str
    token: str = ""

    def get(self, path: str) -> httpx.Response:
        return self.client.get(path)

    def post(self, path: str, **fields: str) -> httpx.Response:
        return self.client.post(path, data={"csrf": self.csrf, **fields})


def sign_in_with_form(server: Server, username: str, *, with_token: bool = False) -> Person:
    client = httpx.Client(base_url=server.url, timeout=30)
    csrf = re.search(r'name="csrf" value="([^"]+)"', client.get("/login").text)
    assert csrf
    signed = client.post("/login", data={"username": username, "password": PASSWORD, "csrf": csrf[1]})
    assert signed.status_code == 303, signed.text
    session_csrf = re.search(r'name="csrf" value="([^"]+)"', client.get("/").text)
    assert session_csrf
    token = api_token(server.data_dir, username) if with_token else ""
    return Person(username, client, session_csrf[1], token)
