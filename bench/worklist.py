"""The worklist at 2,000 cases: server time for its first page and for searches, against the
floor of the same SQL run directly with sqlite3.

    .venv/bin/python bench/worklist.py [--cases 2000] [--repeat 300]

Generates, in a temporary data dir, 17 trusts in 4 pathology networks, 2,000 cases with
patients (names, NHS numbers, dates of birth) and a slide or two each, and a pathologist of
one trust who also sees the cases of the other trusts of its network (shared with the trust)
and a few cases shared with them in person. Starts `collab serve`, and over one keep-alive
connection on localhost times `--repeat` requests (after a warm-up) of: the first page of
/api/worklist, of the worklist page (/), and searches by accession prefix, patient name and
NHS number. The floor runs the very same two queries (collab.store.worklist: page and
counts) in-process with the sqlite3 module, no HTTP, no event loop hops. Prints p50/p95 in
milliseconds and the ratio server / floor. Target: p95 below 100 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import http.client
import json
import random
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from collab.cases import CaseFields, create_case  # noqa: E402
from collab.domain import PRIORITIES, User  # noqa: E402
from collab.security import hash_password, new_token, token_hash  # noqa: E402
from collab.store import Database  # noqa: E402
from collab.store.worklist import WorklistQuery, worklist_counts, worklist_page  # noqa: E402

NETWORKS = ("North", "South", "East", "West")
TRUSTS = 17
FIRST = ("Ada", "Joan", "Margaret", "Ann", "Ruth", "Helen", "Mary", "Grace", "Susan", "Ellen", "Iris", "Jean")
LAST = (
    "Price",
    "Moss",
    "Ellis",
    "Whitfield",
    "Hughes",
    "Patel",
    "Khan",
    "Jones",
    "Okafor",
    "Reid",
    "Shaw",
    "Lowe",
)


def nhs_number(rng: random.Random) -> str:
    """A 10-digit NHS number with a valid modulus-11 check digit."""
    while True:
        digits = [rng.randrange(10) for _ in range(9)]
        check = 11 - sum(d * (10 - i) for i, d in enumerate(digits)) % 11
        if check == 11:
            check = 0
        if check != 10:
            number = "".join(map(str, digits)) + str(check)
            return f"{number[:3]} {number[3:6]} {number[6:]}"


async def generate(data_dir: Path, cases: int) -> tuple[str, User, dict[str, str]]:
    """The world; returns the pathologist's API token, the pathologist, and search terms."""
    rng = random.Random(2026)
    async with Database(data_dir / "collab.sqlite3") as db:
        orgs = [
            await db.catalog.add_org(f"Trust {n:02d}", NETWORKS[n % len(NETWORKS)]) for n in range(TRUSTS)
        ]
        path_user = await db.people.add_user(
            "bench.path",
            display_name="Dr Bench",
            org_id=orgs[0].id,
            role="pathologist",
            password_hash=hash_password("correct horse battery"),
        )
        token = new_token()
        await db.people.add_token(path_user.id, token_hash(token))
        made = []
        for n in range(cases):
            org = orgs[n % TRUSTS]
            fields = CaseFields(
                rng.choice(PRIORITIES),
                f"{rng.choice(FIRST)} {rng.choice(LAST)}",
                nhs_number(rng),
                f"{rng.randrange(1930, 2005)}-{rng.randrange(1, 13):02d}-{rng.randrange(1, 29):02d}",
                "Left breast core biopsy",
            )
            case = await create_case(db, f"S26-{n:05d}", org, fields, by=None, client="bench")
            made.append((case, org, fields))
            for s in range(1 + n % 2):
                await db.catalog.add_slide(
                    case.id, f"/slides/{case.id}-{s}.svs", width=1, height=1, vendor=None, stain="H&E"
                )
        # The rest of the pathologist's network opens its cases to their trust; a few more, in person.
        network = [o for o in orgs if o.network == orgs[0].network and o.id != orgs[0].id]
        for case, org, _ in made:
            if org in network:
                await db.catalog.share(case.id, user_id=None, org_id=orgs[0].id, contributing=False)
        for case, _, _ in rng.sample(made, 20):
            await db.catalog.share(case.id, user_id=path_user.id, org_id=None, contributing=True)
        seen = [m for m in made if m[1] == orgs[0] or m[1] in network]
        case, _, fields = seen[len(seen) // 2]
        terms = {
            "accession prefix": case.accession[:7],
            "patient name": fields.patient_name.split()[1],
            "NHS number": fields.nhs_number.replace(" ", ""),
        }
        return token, path_user, terms


class _Cursor:
    def __init__(self, cursor: sqlite3.Cursor) -> None:
        self.cursor = cursor

    async def __aenter__(self) -> _Cursor:
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.cursor.close()

    async def fetchall(self) -> list[Any]:
        return self.cursor.fetchall()


class _Conn:
    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn

    def execute(self, sql: str, params: Any) -> _Cursor:
        return _Cursor(self.conn.execute(sql, params))


class SqliteFloor:
    """The store's worklist queries on a plain sqlite3 connection: the same SQL, run directly."""

    def __init__(self, path: Path) -> None:
        conn = sqlite3.connect(path)
        conn.row_factory = sqlite3.Row
        self.conn = _Conn(conn)


def percentiles(samples: list[float]) -> tuple[float, float]:
    ordered = sorted(samples)
    return statistics.median(ordered), ordered[min(len(ordered) - 1, int(len(ordered) * 0.95))]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def time_server(port: int, token: str, path: str, repeat: int) -> list[float]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    headers = {"Authorization": f"Bearer {token}"}
    samples = []
    for n in range(repeat + 20):
        started = time.perf_counter()
        conn.request("GET", path, headers=headers)
        response = conn.getresponse()
        body = response.read()
        elapsed = time.perf_counter() - started
        assert response.status == 200, (path, response.status, body[:200])
        if n >= 20:  # warm-up
            samples.append(elapsed * 1000)
    conn.close()
    return samples


def time_floor(db_path: Path, user: User, query: WorklistQuery, repeat: int) -> list[float]:
    floor: Any = SqliteFloor(db_path)
    samples = []

    async def run() -> None:
        for n in range(repeat + 20):
            started = time.perf_counter()
            await worklist_page(floor, user, query)
            await worklist_counts(floor, user)
            if n >= 20:
                samples.append((time.perf_counter() - started) * 1000)

    asyncio.run(run())
    return samples


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cases", type=int, default=2000)
    parser.add_argument("--repeat", type=int, default=300)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="collab-bench-worklist-") as tmp:
        data_dir = Path(tmp)
        started = time.perf_counter()
        token, user, terms = asyncio.run(generate(data_dir, args.cases))
        print(f"generated {args.cases} cases in {TRUSTS} trusts in {time.perf_counter() - started:.1f} s")
        port = free_port()
        server = subprocess.Popen(
            [sys.executable, "-m", "collab", "serve", "--data-dir", str(data_dir), "--port", str(port)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        try:
            assert server.stderr is not None
            for line in server.stderr:
                if b"Uvicorn running on" in line:
                    break
            else:
                raise SystemExit("the server did not start")
            scenarios: list[tuple[str, str, WorklistQuery]] = [
                ("first page (JSON)", "/api/worklist", WorklistQuery(identified=True)),
                ("first page (HTML)", "/", WorklistQuery(identified=True)),
            ] + [
                (
                    f"search: {name}",
                    "/api/worklist?" + urlencode({"q": q}),
                    WorklistQuery(identified=True, q=q),
                )
                for name, q in terms.items()
            ]
            db_path = data_dir / "collab.sqlite3"
            print(
                f"{'scenario':<28}{'rows':>6}{'server p50':>12}{'p95':>8}"
                f"{'sqlite3 p50':>13}{'p95':>8}{'ratio p50':>11}"
            )
            for name, path, query in scenarios:
                served = time_server(port, token, path, args.repeat)
                floor = time_floor(db_path, user, query, args.repeat)
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
                conn.request(
                    "GET",
                    "/api/worklist?" + urlencode({"q": query.q}),
                    headers={"Authorization": f"Bearer {token}"},
                )
                shown = json.loads(conn.getresponse().read())["shown"]
                conn.close()
                s50, s95 = percentiles(served)
                f50, f95 = percentiles(floor)
                print(f"{name:<28}{shown:>6}{s50:>12.1f}{s95:>8.1f}{f50:>13.2f}{f95:>8.2f}{s50 / f50:>11.1f}")
        finally:
            server.terminate()
            server.wait(timeout=10)


if __name__ == "__main__":
    main()
