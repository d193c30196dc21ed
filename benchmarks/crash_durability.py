"""Crash durability: kill -9 a real `interlock serve` while clients write, restart, check.

Client threads make audited changes through the API (create projects with their
environments, add environments, rename projects with If-Match); the server gets SIGKILL at
seeded random points; after each restart every acknowledged change (a 2xx received) must be
there, no change may be half there (a project without its environments or its audit entry,
an audit entry without its change, a version bump without its entry), SQLite's
`PRAGMA integrity_check` must say ok, and the audit chain must verify. Runs on SQLite and on
PostgreSQL (a fresh schema in database `test`) and prints one table row per database.

    python benchmarks/crash_durability.py --kills 20 --seed 1 --database both

The test suite runs a short version through `run()` (tests/server/test_crash_durability.py).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import random
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import create_engine, text

from interlock.server.audit.service import SYSTEM, verify
from interlock.server.auth import service as auth
from interlock.server.auth.roles import Role
from interlock.server.bootstrap import ensure_initial_data
from interlock.server.db import migrate
from interlock.server.db.engine import Database
from interlock.server.settings import Settings

INTERLOCK = str(Path(sys.executable).with_name("interlock"))
DEFAULT_POSTGRES_URL = os.environ.get(
    "INTERLOCK_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
SECRET_KEY = "crash-durability-secret-key-not-for-production"
STARTUP_SECONDS = 60.0
ROUND_SECONDS = 30.0
REQUEST_TIMEOUT = 10.0
MAX_ENVIRONMENTS = 40  # below the service's limit of 50 per project


# --- what the clients did ------------------------------------------------------------------


@dataclass(slots=True)
class Change:
    """One write a client sent, and what it heard back."""

    kind: str  # "project" | "environment" | "rename"
    project: str
    name: str  # environment key for "environment", the new name for "rename"
    environments: tuple[str, ...] = ()
    # "acked" (2xx) | "refused" (4xx) | "unknown" (sent, no answer or a 5xx) | "unsent"
    outcome: str = "unknown"
    version: int | None = None
    status: int | None = None


@dataclass(slots=True)
class Writer:
    """One client thread's state; it lives across rounds, as a real client would."""

    index: int
    rng: random.Random
    counter: int = 0
    project: str | None = None
    etag: str | None = None
    environments: int = 0
    changes: list[Change] = field(default_factory=list)

    def next_name(self, prefix: str) -> str:
        self.counter += 1
        return f"{prefix}{self.index}-{self.counter}"


def _send(client: httpx.Client, change: Change, method: str, url: str, **kwargs: Any) -> Any:
    """Send one write; record its outcome. Returns the response, or None if none came."""
    try:
        response = client.request(method, url, **kwargs)
    except httpx.ConnectError:
        change.outcome = "unsent"  # the server was already gone
        return None
    except httpx.HTTPError:
        change.outcome = "unknown"
        return None
    change.status = response.status_code
    if 200 <= response.status_code < 300:
        change.outcome = "acked"
    elif 400 <= response.status_code < 500:
        change.outcome = "refused"
    else:
        change.outcome = "unknown"
    return response


def write_one(client: httpx.Client, writer: Writer) -> bool:
    """Make one change; False once the server stopped answering."""
    roll = writer.rng.random()
    if writer.project is None or roll < 0.25 or writer.environments >= MAX_ENVIRONMENTS:
        key = writer.next_name("p")
        environments = tuple(f"e{i}" for i in range(writer.rng.randint(1, 4)))
        change = Change("project", key, key, environments)
        writer.changes.append(change)
        body = {
            "key": key,
            "name": key,
            "environments": [{"key": e, "name": e} for e in environments],
        }
        response = _send(client, change, "POST", "/api/v1/projects", json=body)
        if change.outcome == "acked":
            writer.project, writer.etag = key, response.headers["ETag"]
            writer.environments = len(environments)
            change.version = response.json()["version"]
    elif roll < 0.6:
        change = Change("environment", writer.project, writer.next_name("x"))
        writer.changes.append(change)
        response = _send(
            client,
            change,
            "POST",
            f"/api/v1/projects/{writer.project}/environments",
            json={"key": change.name, "name": change.name},
        )
        if change.outcome == "acked":
            writer.environments += 1
    else:
        change = Change("rename", writer.project, writer.next_name("n"))
        writer.changes.append(change)
        response = _send(
            client,
            change,
            "PATCH",
            f"/api/v1/projects/{writer.project}",
            json={"name": change.name},
            headers={"If-Match": writer.etag or "*"},
        )
        if change.outcome == "acked":
            writer.etag = response.headers["ETag"]
            change.version = response.json()["version"]
        elif change.status == 412:
            # An earlier rename committed but its answer was lost in a kill: read again.
            try:
                fresh = client.get(f"/api/v1/projects/{writer.project}")
            except httpx.HTTPError:
                return False
            writer.etag = fresh.headers.get("ETag")
    return response is not None


def _write_loop(
    base_url: str, key: str, writer: Writer, stop: threading.Event, acked: Counter[int]
) -> None:
    headers = {"Authorization": f"Bearer {key}"}
    with httpx.Client(base_url=base_url, headers=headers, timeout=REQUEST_TIMEOUT) as client:
        while not stop.is_set():
            if not write_one(client, writer):
                return
            if writer.changes[-1].outcome == "acked":
                acked[writer.index] += 1


# --- the server under test ------------------------------------------------------------------


@dataclass(slots=True)
class Target:
    """One database and the environment a server (or the CLI) needs to use it."""

    database: str  # "sqlite" | "postgresql"
    url: str
    env: dict[str, str]
    workdir: Path
    log: Path
    admin_key: str


@contextlib.contextmanager
def prepare(
    database: str, workdir: Path, postgres_url: str = DEFAULT_POSTGRES_URL
) -> Iterator[Target]:
    """A fresh, migrated database: a data dir for SQLite, a new schema for PostgreSQL."""
    data_dir = workdir / f"data-{database}"
    data_dir.mkdir(parents=True, exist_ok=True)
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("INTERLOCK_") and k != "PROMETHEUS_MULTIPROC_DIR"
    }
    env.update(
        INTERLOCK_DATA_DIR=str(data_dir),
        INTERLOCK_LOAD_DEMO_DATA="false",
        INTERLOCK_PASSWORD_HASH_COST="minimum",
        INTERLOCK_LOG_LEVEL="warning",
        INTERLOCK_RATE_LIMIT_PER_KEY="",
        INTERLOCK_RATE_LIMIT_PER_IP="",
    )
    log = workdir / f"server-{database}.log"
    if database == "sqlite":
        url = f"sqlite:///{data_dir / 'interlock.db'}"
        target = Target(database, url, env, workdir, log, _first_start(url, data_dir))
        yield target
        return
    schema = f"crash_{os.getpid()}_{random.randrange(16**8):08x}"
    admin = create_engine(postgres_url, connect_args={"connect_timeout": 5})
    with admin.begin() as connection:
        connection.execute(text(f'CREATE SCHEMA "{schema}"'))
    url = f"{postgres_url}?options=-csearch_path%3D{schema}"
    env.update(INTERLOCK_DATABASE_URL=url, INTERLOCK_SECRET_KEY=SECRET_KEY)
    try:
        yield Target(database, url, env, workdir, log, _first_start(url, data_dir))
    finally:
        with admin.begin() as connection:
            connection.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        admin.dispose()


def _first_start(url: str, data_dir: Path) -> str:
    """Migrate, create the default project, and make an admin key; returns the key.

    In-process rather than through `interlock db upgrade` and `interlock keys create`: the
    same service code, without paying for two more interpreter starts per run.
    """
    settings = Settings(
        data_dir=data_dir,
        database_url=url,
        secret_key=SECRET_KEY,
        password_hash_cost="minimum",
        load_demo_data=False,
    )
    db = Database(url)
    try:
        migrate.upgrade(db.engine)
        ensure_initial_data(settings, db)
        with db.write_session() as session:
            _, key = auth.create_key(session, SYSTEM, name="crash", role=Role.ADMIN)
    finally:
        db.dispose()
    return key


def cli(target: Target, *args: str) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        [INTERLOCK, *args],
        env=target.env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    return done


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


class Server:
    """`interlock serve` in its own process, on a free loopback port."""

    def __init__(self, target: Target) -> None:
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        with target.log.open("a") as log:
            self.process = subprocess.Popen(
                [INTERLOCK, "serve", "--host", "127.0.0.1", "--port", str(self.port)],
                env=target.env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        self._wait_ready(target.log)

    def _wait_ready(self, log: Path) -> None:
        deadline = time.monotonic() + STARTUP_SECONDS
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"the server exited at startup: {_tail(log)}")
            try:
                if httpx.get(f"{self.base_url}/readyz", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
        self.kill()
        raise RuntimeError(f"the server was not ready in {STARTUP_SECONDS}s: {_tail(log)}")

    def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(30)

    def stop(self) -> None:
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(30)
        except subprocess.TimeoutExpired:
            self.kill()


def _tail(log: Path) -> str:
    lines = log.read_text(errors="replace").strip().splitlines()
    return " | ".join(lines[-5:])


def write_until_killed(server: Server, key: str, writers: list[Writer], rng: random.Random) -> None:
    """Let the writers run until a seeded number of acknowledgements, then SIGKILL."""
    stop = threading.Event()
    acked: Counter[int] = Counter()
    threads = [
        threading.Thread(
            target=_write_loop, args=(server.base_url, key, w, stop, acked), daemon=True
        )
        for w in writers
    ]
    target_acks = rng.randint(3, 30)
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + ROUND_SECONDS
    while sum(acked.values()) < target_acks and time.monotonic() < deadline:
        if not any(t.is_alive() for t in threads):
            break
        time.sleep(0.002)
    # A little more, so the kill lands at an arbitrary point of some request.
    time.sleep(rng.uniform(0, 0.03))
    server.kill()
    stop.set()
    for thread in threads:
        thread.join(REQUEST_TIMEOUT + 5)


# --- the check after each restart -----------------------------------------------------------


@dataclass(slots=True)
class Check:
    lost: list[str]
    half_written: list[str]
    found: int
    applied_unanswered: int
    integrity: str
    audit_ok: bool


def check(target: Target, changes: list[Change]) -> Check:
    """Compare what the clients were told with what the database holds."""
    db = Database(target.url)
    try:
        with db.read_session() as session:
            audit_ok = verify(session).ok
            projects = {
                key: (name, version)
                for key, name, version in session.execute(
                    text("SELECT key, name, version FROM projects")
                )
            }
            environments = {
                (project, environment)
                for project, environment in session.execute(
                    text(
                        "SELECT p.key, e.key FROM environments e "
                        "JOIN projects p ON p.id = e.project_id"
                    )
                )
            }
            entries = session.execute(
                text(
                    "SELECT action, resource_id, after FROM audit_entries "
                    "WHERE action IN ('project.create', 'environment.create', 'project.update') "
                    "ORDER BY seq"
                )
            ).all()
    finally:
        db.dispose()
    plain = [(a, r, _json(x)) for a, r, x in entries]
    half = half_written(projects, environments, plain)
    lost = lost_changes(changes, projects, environments, plain)
    acked = sum(1 for c in changes if c.outcome == "acked")
    applied = applied_unanswered(changes, projects, environments, plain)
    return Check(lost, half, acked - len(lost), applied, integrity(target), audit_ok)


def _json(value: Any) -> dict[str, Any]:
    import json

    if isinstance(value, str):
        loaded: dict[str, Any] = json.loads(value)
        return loaded
    return dict(value or {})


Entry = tuple[str, str, dict[str, Any]]


def half_written(
    projects: dict[str, tuple[str, int]],
    environments: set[tuple[str, str]],
    entries: list[Entry],
) -> list[str]:
    """Every change is all or nothing: the rows and the audit entry exist together."""
    problems: list[str] = []
    created = Counter(r for a, r, _ in entries if a == "project.create")
    created_with = {
        r: tuple(x.get("environments", ())) for a, r, x in entries if a == "project.create"
    }
    added = Counter(r for a, r, _ in entries if a == "environment.create")
    updates: dict[str, list[dict[str, Any]]] = {}
    for action, resource, after in entries:
        if action == "project.update":
            updates.setdefault(resource, []).append(after)
    for key, (name, version) in projects.items():
        if created[key] != 1:
            problems.append(f"project {key} has {created[key]} creation entries")
        renames = updates.get(key, [])
        if version != 1 + len(renames):
            problems.append(f"project {key} is at version {version} with {len(renames)} updates")
        if renames and renames[-1].get("name") != name:
            problems.append(f"project {key} is named {name!r}, its last entry says otherwise")
    for key, listed in created_with.items():
        if key not in projects:
            problems.append(f"audit entry for project {key}, which does not exist")
        for environment in listed:
            if (key, environment) not in environments:
                problems.append(f"project {key} lacks environment {environment} it was made with")
    for project, environment in environments:
        from_creation = environment in created_with.get(project, ())
        if from_creation + added[f"{project}/{environment}"] != 1:
            problems.append(f"environment {project}/{environment} has no single audit entry")
    for resource in added:
        project, _, environment = resource.partition("/")
        if (project, environment) not in environments:
            problems.append(f"audit entry for environment {resource}, which does not exist")
    return problems


def lost_changes(
    changes: list[Change],
    projects: dict[str, tuple[str, int]],
    environments: set[tuple[str, str]],
    entries: list[Entry],
) -> list[str]:
    """Acknowledged changes the database does not hold."""
    held = _holds(projects, environments, entries)
    return [_describe(c) for c in changes if c.outcome == "acked" and not held(c)]


def applied_unanswered(
    changes: list[Change],
    projects: dict[str, tuple[str, int]],
    environments: set[tuple[str, str]],
    entries: list[Entry],
) -> int:
    """Changes that committed although their answer was lost in a kill (allowed, and a sign
    that kills land between the commit and the response too)."""
    held = _holds(projects, environments, entries)
    return sum(1 for c in changes if c.outcome == "unknown" and held(c))


def _describe(change: Change) -> str:
    if change.kind == "project":
        return f"project {change.project}"
    if change.kind == "environment":
        return f"environment {change.project}/{change.name}"
    return f"rename of {change.project} to {change.name}"


def _holds(
    projects: dict[str, tuple[str, int]],
    environments: set[tuple[str, str]],
    entries: list[Entry],
) -> Callable[[Change], bool]:
    created_with = {
        r: tuple(x.get("environments", ())) for a, r, x in entries if a == "project.create"
    }
    renamed = {(r, x.get("name"), x.get("version")) for a, r, x in entries if a == "project.update"}
    renamed_to = {(r, name) for r, name, _ in renamed}

    def held(change: Change) -> bool:
        if change.kind == "project":
            return (
                change.project in projects
                and created_with.get(change.project) == change.environments
            )
        if change.kind == "environment":
            return (change.project, change.name) in environments
        if change.version is None:  # no answer, so no version to match
            return (change.project, change.name) in renamed_to
        return (change.project, change.name, change.version) in renamed

    return held


def integrity(target: Target) -> str:
    if target.database != "sqlite":
        return "n/a"
    path = target.url.removeprefix("sqlite:///")
    with contextlib.closing(sqlite3.connect(path)) as connection:
        rows = connection.execute("PRAGMA integrity_check").fetchall()
    return "ok" if rows == [("ok",)] else str(rows[0][0])


# --- one database, start to finish ----------------------------------------------------------


@dataclass(slots=True)
class Report:
    database: str
    kills: int
    kills_survived: int
    acknowledged: int
    found: int
    lost: int
    half_written: int
    unanswered: int
    applied_unanswered: int
    server_errors: int
    integrity: str
    audit_verify: str
    problems: list[str]


def run(
    database: str,
    kills: int,
    seed: int,
    workdir: Path,
    *,
    threads: int = 3,
    postgres_url: str = DEFAULT_POSTGRES_URL,
    progress: Callable[[str], None] | None = None,
) -> Report:
    """Write, kill -9, restart and check `kills` times on one database."""
    rng = random.Random(f"{seed}-{database}")
    writers = [Writer(i, random.Random(f"{seed}-{database}-{i}")) for i in range(threads)]
    survived = 0
    lost: set[str] = set()
    half: set[str] = set()
    integrity_seen: set[str] = set()
    audit_ok = True
    last: Check | None = None
    with prepare(database, workdir, postgres_url) as target:
        key = target.admin_key
        server = Server(target)
        try:
            for number in range(1, kills + 1):
                write_until_killed(server, key, writers, rng)
                server = Server(target)
                changes = [c for w in writers for c in w.changes]
                last = check(target, changes)
                lost.update(last.lost)
                half.update(last.half_written)
                integrity_seen.add(last.integrity)
                audit_ok = audit_ok and last.audit_ok
                if (
                    not last.lost
                    and not last.half_written
                    and last.integrity in ("ok", "n/a")
                    and last.audit_ok
                ):
                    survived += 1
                if progress is not None:
                    progress(
                        f"{database}: kill {number}/{kills}: {last.found} acknowledged changes "
                        f"found, {len(last.lost)} lost, {len(last.half_written)} half-written"
                    )
        finally:
            server.stop()
        # The command an operator would run, once the dust has settled.
        cli_verified = cli(target, "audit", "verify").returncode == 0
    changes = [c for w in writers for c in w.changes]
    acknowledged = sum(1 for c in changes if c.outcome == "acked")
    return Report(
        database=database,
        kills=kills,
        kills_survived=survived,
        acknowledged=acknowledged,
        found=last.found if last else 0,
        lost=len(lost),
        half_written=len(half),
        unanswered=sum(1 for c in changes if c.outcome == "unknown"),
        applied_unanswered=last.applied_unanswered if last else 0,
        server_errors=sum(1 for c in changes if c.status is not None and c.status >= 500),
        integrity=", ".join(sorted(integrity_seen)) or "-",
        audit_verify="ok" if audit_ok and cli_verified else "FAILED",
        problems=sorted(lost | half),
    )


COLUMNS = (
    ("database", "database"),
    ("kills survived", "survived"),
    ("changes acknowledged", "acknowledged"),
    ("changes found", "found"),
    ("lost", "lost"),
    ("half-written", "half_written"),
    ("unanswered (of them applied)", "unanswered"),
    ("5xx", "server_errors"),
    ("integrity", "integrity"),
    ("audit verify", "audit_verify"),
)


def table(reports: list[Report]) -> str:
    rows = [[title for title, _ in COLUMNS]]
    for report in reports:
        row = []
        for _, name in COLUMNS:
            if name == "survived":
                row.append(f"{report.kills_survived}/{report.kills}")
            elif name == "unanswered":
                row.append(f"{report.unanswered} ({report.applied_unanswered})")
            else:
                row.append(str(getattr(report, name)))
        rows.append(row)
    widths = [max(len(row[i]) for row in rows) for i in range(len(COLUMNS))]
    lines = [" | ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)) for row in rows]
    lines.insert(1, "-|-".join("-" * w for w in widths))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--kills", type=int, default=20, help="kill -9s per database")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--database", choices=("sqlite", "postgresql", "both"), default="both")
    parser.add_argument("--threads", type=int, default=3, help="client threads writing")
    parser.add_argument("--postgres-url", default=DEFAULT_POSTGRES_URL)
    args = parser.parse_args(argv)
    databases = ["sqlite", "postgresql"] if args.database == "both" else [args.database]
    reports = []
    with tempfile.TemporaryDirectory(prefix="interlock-crash-") as work:
        for database in databases:
            started = time.monotonic()
            report = run(
                database,
                args.kills,
                args.seed,
                Path(work),
                threads=args.threads,
                postgres_url=args.postgres_url,
                progress=lambda line: print(line, file=sys.stderr, flush=True),
            )
            reports.append(report)
            print(
                f"{database}: {args.kills} kills in {time.monotonic() - started:.0f}s",
                file=sys.stderr,
            )
            for problem in report.problems[:20]:
                print(f"  {problem}", file=sys.stderr)
    print(table(reports))
    failed = any(r.lost or r.half_written or r.kills_survived != r.kills for r in reports)
    return 1 if failed or any(r.audit_verify != "ok" for r in reports) else 0


if __name__ == "__main__":
    raise SystemExit(main())
