"""Backups of the whole database: `interlock db backup FILE` and `interlock db restore FILE`.

SQLite goes through SQLite's online backup API, which copies a consistent snapshot while
the server keeps writing (in WAL mode the copy is one read transaction, so writers are
never blocked), and which, used the other way round, rewrites a live database file with
its WAL and shared-memory index kept coherent. PostgreSQL goes through pg_dump's custom
format and pg_restore, run by the PostgreSQL client tools.

Every failure is a BackupError whose message is one line meant for a person, raised before
anything was changed: a backup is written to a temporary file and renamed into place, and a
restore validates the whole file first and then replaces the contents in one transaction.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import sqlite3
import subprocess
import tempfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from alembic.config import Config
from alembic.script import ScriptDirectory
from sqlalchemy import bindparam, create_engine, text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import SQLAlchemyError

from interlock.server.db.engine import BUSY_TIMEOUT_MS, WRITE_LOCK_KEY
from interlock.server.db.migrate import MIGRATIONS

SQLITE_MAGIC = b"SQLite format 3\x00"
PG_DUMP_MAGIC = b"PGDMP"
# Tables that every interlock schema has had since the first migration: a file without
# them is not an interlock backup, whatever else it holds.
MARKER_TABLES = ("alembic_version", "audit_entries")
CLIENT_PACKAGE = "postgresql-client"
TOOL_TIMEOUT_SECONDS = 3600


class BackupError(Exception):
    """Backup or restore refused or failed; the message is one line for the operator."""


@dataclass(frozen=True, slots=True)
class BackupInfo:
    """What a backup holds (or a restore put back)."""

    kind: str  # "sqlite" | "postgresql"
    revision: str | None
    audit_entries: int | None
    size: int


def backup(database_url: str, destination: Path) -> BackupInfo:
    """Write a consistent copy of the database at `database_url` to `destination`.

    Safe while the server runs. `destination` appears only when complete.
    """
    destination = Path(destination)
    _check_destination(destination)
    if make_url(database_url).get_backend_name() == "sqlite":
        return _sqlite_backup(_sqlite_path(database_url), destination)
    return _postgres_backup(database_url, destination)


def restore(database_url: str, source: Path) -> BackupInfo:
    """Replace the contents of the database at `database_url` with the backup in `source`.

    Meant for a stopped server. Validates `source` completely before changing anything.
    """
    source = Path(source)
    if not source.exists():
        raise BackupError(f"no such file: {source}")
    if not source.is_file():
        raise BackupError(f"not a file: {source}")
    try:
        with source.open("rb") as handle:
            head = handle.read(len(SQLITE_MAGIC))
    except OSError as exc:
        raise BackupError(f"cannot read {source}: {exc.strerror or exc}") from None
    sqlite = make_url(database_url).get_backend_name() == "sqlite"
    if head.startswith(PG_DUMP_MAGIC) and sqlite:
        raise BackupError(
            f"{source} is a PostgreSQL (pg_dump) backup; this interlock uses SQLite, "
            "so restore it into PostgreSQL"
        )
    if head.startswith(SQLITE_MAGIC) and not sqlite:
        raise BackupError(
            f"{source} is a SQLite backup; this interlock uses PostgreSQL, "
            "so restore it into an embedded (SQLite) instance"
        )
    if sqlite:
        if head != SQLITE_MAGIC:
            raise BackupError(f"{source} is not an interlock backup (not a SQLite database)")
        return _sqlite_restore(source, _sqlite_path(database_url))
    if not head.startswith(PG_DUMP_MAGIC):
        raise BackupError(f"{source} is not an interlock backup (not a pg_dump archive)")
    return _postgres_restore(database_url, source)


# --- shared helpers -------------------------------------------------------------------------


def _check_destination(destination: Path) -> None:
    if destination.is_dir():
        raise BackupError(f"cannot write {destination}: it is a directory")
    parent = destination.parent
    if not parent.is_dir():
        raise BackupError(f"cannot write {destination}: no directory {parent}")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise BackupError(f"cannot write {destination}: {parent} is not writable")


@contextlib.contextmanager
def _partial_file(destination: Path) -> Iterator[Path]:
    """A temporary path beside `destination`, renamed onto it only if the block succeeds."""
    try:
        handle, name = tempfile.mkstemp(
            prefix=f".{destination.name}.", suffix=".partial", dir=destination.parent
        )
    except OSError as exc:
        raise BackupError(f"cannot write {destination}: {exc.strerror or exc}") from None
    os.close(handle)
    partial = Path(name)
    try:
        yield partial
        _fsync(partial)
        partial.replace(destination)
        _fsync(destination.parent)
    finally:
        partial.unlink(missing_ok=True)


def _fsync(path: Path) -> None:
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


@lru_cache(maxsize=1)
def _known_revisions() -> frozenset[str]:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    return frozenset(s.revision for s in ScriptDirectory.from_config(config).walk_revisions())


def _check_revision(revision: str | None, source: Path) -> None:
    if revision is None:
        raise BackupError(f"{source} is not an interlock backup (its schema has no revision)")
    if revision not in _known_revisions():
        raise BackupError(
            f"{source} holds schema revision {revision}, which this interlock does not know: "
            "it was made by a newer interlock; restore it with that version"
        )


def _first_line(message: str) -> str:
    for line in message.strip().splitlines():
        if line.strip():
            return line.strip()
    return "unknown error"


# --- SQLite ---------------------------------------------------------------------------------


def _sqlite_path(database_url: str) -> Path:
    database = make_url(database_url).database
    if not database or database == ":memory:":
        raise BackupError("an in-memory SQLite database cannot be backed up or restored")
    return Path(database)


def _sqlite_describe(connection: sqlite3.Connection, name: Path) -> tuple[str | None, int]:
    """The schema revision and audit entry count, or BackupError if not an interlock file."""
    try:
        tables = {
            row[0]
            for row in connection.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
        }
        if not set(MARKER_TABLES) <= tables:
            raise BackupError(f"{name} is not an interlock database (no interlock tables)")
        row = connection.execute("SELECT version_num FROM alembic_version").fetchone()
        count = connection.execute("SELECT count(*) FROM audit_entries").fetchone()
    except sqlite3.DatabaseError as exc:
        raise BackupError(f"{name} is not an interlock database ({exc})") from None
    return (row[0] if row else None), int(count[0])


def _sqlite_check_integrity(connection: sqlite3.Connection, name: Path) -> None:
    try:
        result = connection.execute("PRAGMA integrity_check").fetchall()
    except sqlite3.DatabaseError as exc:
        raise BackupError(f"{name} is damaged: {exc}") from None
    if result != [("ok",)]:
        raise BackupError(f"{name} is damaged: integrity check says {result[0][0]}")


def _sqlite_connect(path: Path, *, read_only: bool = False) -> sqlite3.Connection:
    uri = path.resolve().as_uri() + ("?mode=ro" if read_only else "")
    connection = sqlite3.connect(
        uri.replace("file://", "file:", 1), uri=True, timeout=BUSY_TIMEOUT_MS / 1000
    )
    connection.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
    return connection


def _sqlite_backup(source: Path, destination: Path) -> BackupInfo:
    if not source.is_file():
        raise BackupError(f"no database at {source}")
    try:
        live = _sqlite_connect(source)
    except sqlite3.Error as exc:
        raise BackupError(f"cannot open {source}: {exc}") from None
    try:
        revision, _ = _sqlite_describe(live, source)
        with _partial_file(destination) as partial:
            copy = sqlite3.connect(partial)
            try:
                # One step (pages=-1) copies the whole file inside a single read
                # transaction: a snapshot, and in WAL mode writers carry on meanwhile.
                live.backup(copy, pages=-1)
                # A self-contained file: no -wal beside it when it is opened later.
                copy.execute("PRAGMA journal_mode=DELETE")
                _sqlite_check_integrity(copy, destination)
                revision, audit_entries = _sqlite_describe(copy, destination)
            finally:
                copy.close()
    except sqlite3.Error as exc:
        raise BackupError(f"backup of {source} failed: {exc}") from None
    finally:
        live.close()
    return BackupInfo("sqlite", revision, audit_entries, destination.stat().st_size)


def _sqlite_restore(source: Path, target: Path) -> BackupInfo:
    try:
        backup_file = _sqlite_connect(source, read_only=True)
    except sqlite3.Error as exc:
        raise BackupError(f"cannot open {source}: {exc}") from None
    try:
        _sqlite_check_integrity(backup_file, source)
        revision, audit_entries = _sqlite_describe(backup_file, source)
        _check_revision(revision, source)
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            live = _sqlite_connect(target)
        except (OSError, sqlite3.Error) as exc:
            raise BackupError(f"cannot open {target}: {exc}") from None
        try:
            # Through the live file's own pager: its WAL and -shm stay coherent, which
            # copying the file over it would not guarantee.
            backup_file.backup(live, pages=-1)
            _sqlite_check_integrity(live, target)
        except sqlite3.Error as exc:
            raise BackupError(f"restore into {target} failed: {exc}") from None
        finally:
            live.close()
    finally:
        backup_file.close()
    return BackupInfo("sqlite", revision, audit_entries, source.stat().st_size)


# --- PostgreSQL -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Target:
    """Where a PostgreSQL database lives, as libpq's tools take it."""

    conninfo: str
    env: Mapping[str, str]
    schema: str
    server_major: int
    shown: str
    has_interlock: bool


def _libpq(url: URL) -> tuple[str, dict[str, str]]:
    """A libpq keyword/value connection string; the password travels in PGPASSWORD."""
    keywords: dict[str, str] = {}
    if url.host:
        keywords["host"] = url.host
    if url.port:
        keywords["port"] = str(url.port)
    if url.username:
        keywords["user"] = url.username
    if url.database:
        keywords["dbname"] = url.database
    for name, value in url.query.items():
        keywords[name] = value if isinstance(value, str) else value[-1]
    conninfo = " ".join(f"{name}={_quote_libpq(value)}" for name, value in keywords.items())
    env = dict(os.environ)
    if url.password is not None:
        env["PGPASSWORD"] = str(url.password)
    env.setdefault("PGCONNECT_TIMEOUT", "10")
    return conninfo, env


def _quote_libpq(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise BackupError(
            f"{name} is not installed: install the PostgreSQL client tools "
            f"(Debian/Ubuntu: apt-get install {CLIENT_PACKAGE})"
        )
    return path


def _tool_major(path: str) -> int:
    output = _run([path, "--version"], what=Path(path).name).stdout
    match = re.search(r"(\d+)(?:\.\d+)?", output)
    if match is None:
        raise BackupError(f"cannot tell the version of {path}: {output.strip()!r}")
    return int(match.group(1))


def _run(
    command: list[str], *, what: str, env: Mapping[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    try:
        done = subprocess.run(
            command,
            env=env,
            capture_output=True,
            text=True,
            timeout=TOOL_TIMEOUT_SECONDS,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise BackupError(f"{what} failed: {exc}") from None
    if done.returncode != 0:
        raise BackupError(f"{what} failed: {_first_line(done.stderr or done.stdout)}")
    return done


def _postgres_target(database_url: str) -> _Target:
    url = make_url(database_url)
    shown = url.render_as_string(hide_password=True)
    engine = create_engine(url, connect_args={"connect_timeout": 10})
    try:
        with engine.connect() as connection:
            schema = connection.scalar(text("SELECT current_schema()"))
            version = int(connection.scalar(text("SHOW server_version_num")) or 0)
            found = connection.scalar(
                text(
                    "SELECT count(*) FROM information_schema.tables "
                    "WHERE table_schema = current_schema() AND table_name IN :names"
                ).bindparams(bindparam("names", expanding=True)),
                {"names": list(MARKER_TABLES)},
            )
    except SQLAlchemyError as exc:
        reason = _first_line(str(getattr(exc, "orig", None) or exc))
        raise BackupError(f"cannot reach the database {shown}: {reason}") from None
    finally:
        engine.dispose()
    if schema is None:
        raise BackupError(
            f"the search_path of {shown} names no existing schema: create the schema first"
        )
    conninfo, env = _libpq(url)
    has_interlock = found == len(MARKER_TABLES)
    return _Target(conninfo, env, str(schema), version // 10000, shown, has_interlock)


def _check_tool_version(tool: str, target: _Target) -> None:
    major = _tool_major(tool)
    if major < target.server_major:
        raise BackupError(
            f"{Path(tool).name} {major} cannot handle PostgreSQL {target.server_major}: "
            f"install {CLIENT_PACKAGE}-{target.server_major} or newer"
        )


def _schema_pattern(schema: str) -> str:
    # Double quotes make pg_dump take the name literally rather than as a pattern.
    return '"' + schema.replace('"', '""') + '"'


def _postgres_backup(database_url: str, destination: Path) -> BackupInfo:
    pg_dump = _tool("pg_dump")
    target = _postgres_target(database_url)
    _check_tool_version(pg_dump, target)
    if not target.has_interlock:
        raise BackupError(f"no interlock database in schema {target.schema!r} of {target.shown}")
    with _partial_file(destination) as partial:
        # pg_dump reads everything in one repeatable-read snapshot: consistent while the
        # servers keep writing. Only the schema interlock uses, so a shared database's
        # other tenants neither leak into the backup nor get replaced by a restore.
        _run(
            [
                pg_dump,
                "--format=custom",
                f"--schema={_schema_pattern(target.schema)}",
                f"--file={partial}",
                f"--dbname={target.conninfo}",
            ],
            what="pg_dump",
            env=target.env,
        )
        revision, _schema = _pg_archive_contents(partial, destination)
    return BackupInfo("postgresql", revision, None, destination.stat().st_size)


_LIST_TABLE = re.compile(r"^\d+; \d+ \d+ TABLE (\S+) (\S+) ")
_LIST_SCHEMA = re.compile(r"^\d+; \d+ \d+ SCHEMA - (\S+) ")


def _pg_archive_contents(archive: Path, name: Path) -> tuple[str | None, str]:
    """The schema revision and the schema name inside a pg_dump archive; BackupError if the
    archive is not an interlock backup."""
    pg_restore = _tool("pg_restore")
    listing = _run([pg_restore, "--list", str(archive)], what=f"reading {name}").stdout
    tables: dict[str, set[str]] = {}
    for line in listing.splitlines():
        match = _LIST_TABLE.match(line)
        if match:
            tables.setdefault(match.group(1), set()).add(match.group(2))
    schemas = [s for s, names in tables.items() if set(MARKER_TABLES) <= names]
    if len(schemas) != 1:
        raise BackupError(f"{name} is not an interlock backup (no interlock tables)")
    schema = schemas[0]
    data = _run(
        [
            pg_restore,
            "--data-only",
            f"--schema={schema}",
            "--table=alembic_version",
            "--file=-",
            str(archive),
        ],
        what=f"reading {name}",
    ).stdout
    lines = data.splitlines()
    revision = None
    for index, line in enumerate(lines):
        if line.startswith("COPY ") and "alembic_version" in line and index + 1 < len(lines):
            revision = lines[index + 1].strip() if lines[index + 1] != "\\." else None
            break
    return revision, schema


# Runs first in the restore's transaction: drops what the schema holds now (including
# tables a later migration added, which the archive would not know to drop), so the schema
# ends exactly as backed up. The schema itself stays, with its owner and privileges.
_CLEAR_SCHEMA = """
SELECT pg_advisory_xact_lock({lock});
DO $clear$
DECLARE
  item record;
BEGIN
  FOR item IN
    SELECT c.relname AS name,
           CASE c.relkind WHEN 'v' THEN 'VIEW' WHEN 'm' THEN 'MATERIALIZED VIEW'
                          WHEN 'S' THEN 'SEQUENCE' WHEN 'f' THEN 'FOREIGN TABLE'
                          ELSE 'TABLE' END AS kind
    FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE n.nspname = {schema} AND c.relkind IN ('r', 'p', 'v', 'm', 'S', 'f')
      AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.objid = c.oid AND d.deptype = 'e')
  LOOP
    EXECUTE format('DROP %s IF EXISTS %I.%I CASCADE', item.kind, {schema}, item.name);
  END LOOP;
  FOR item IN
    SELECT t.typname AS name
    FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace
    WHERE n.nspname = {schema}
      AND (t.typtype IN ('e', 'd', 'r')
           OR (t.typtype = 'c' AND (SELECT relkind FROM pg_class WHERE oid = t.typrelid) = 'c'))
      AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.objid = t.oid AND d.deptype = 'e')
  LOOP
    EXECUTE format('DROP TYPE IF EXISTS %I.%I CASCADE', {schema}, item.name);
  END LOOP;
  FOR item IN
    SELECT p.oid::regprocedure::text AS signature
    FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
    WHERE n.nspname = {schema} AND p.prokind IN ('f', 'p')
      AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.objid = p.oid AND d.deptype = 'e')
  LOOP
    EXECUTE 'DROP ROUTINE IF EXISTS ' || item.signature || ' CASCADE';
  END LOOP;
END
$clear$;
"""


def _sql_literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _postgres_restore(database_url: str, source: Path) -> BackupInfo:
    pg_restore, psql = _tool("pg_restore"), _tool("psql")
    revision, schema = _pg_archive_contents(source, source)
    _check_revision(revision, source)
    target = _postgres_target(database_url)
    _check_tool_version(pg_restore, target)
    if schema != target.schema:
        raise BackupError(
            f"{source} holds schema {schema!r}, but {target.shown} uses schema "
            f"{target.schema!r}: restore it into a database whose search_path is {schema!r}"
        )
    with tempfile.TemporaryDirectory(prefix="interlock-restore-") as work:
        # The archive's table of contents minus its CREATE SCHEMA: the schema is kept
        # (and cleared) rather than dropped, so its owner and grants survive.
        listing = _run([pg_restore, "--list", str(source)], what=f"reading {source}").stdout
        kept = [line for line in listing.splitlines() if not _LIST_SCHEMA.match(line)]
        list_file = Path(work) / "contents.list"
        list_file.write_text("\n".join(kept) + "\n")
        script = Path(work) / "restore.sql"
        _run(
            [
                pg_restore,
                "--clean",
                "--if-exists",
                "--no-owner",
                "--no-privileges",
                f"--use-list={list_file}",
                f"--file={script}",
                str(source),
            ],
            what=f"reading {source}",
        )
        clear = _CLEAR_SCHEMA.format(lock=WRITE_LOCK_KEY, schema=_sql_literal(schema))
        # One transaction for the clearing and the whole archive: any error rolls it all
        # back and the database is as it was.
        _run(
            [
                psql,
                "--no-psqlrc",
                "--quiet",
                "--set=ON_ERROR_STOP=1",
                "--single-transaction",
                f"--command={clear}",
                f"--file={script}",
                f"--dbname={target.conninfo}",
            ],
            what="restore",
            env=target.env,
        )
    return BackupInfo("postgresql", revision, None, source.stat().st_size)
