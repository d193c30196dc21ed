"""The `interlock` command line. Output meant for scripts goes to stdout; logs go to stderr."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any, NoReturn

try:
    import typer

    HAVE_SERVER = True
except ImportError:  # pragma: no cover - the base install has no CLI
    HAVE_SERVER = False


def main() -> None:
    if not HAVE_SERVER:
        sys.stderr.write(
            'interlock: the command line needs the server extra: pip install "interlock[server]"\n'
        )
        raise SystemExit(2)
    app()


def _fail(message: str, code: int = 1) -> NoReturn:
    sys.stderr.write(f"interlock: {message}\n")
    raise SystemExit(code)


if HAVE_SERVER:
    from sqlalchemy.exc import OperationalError

    from interlock.server.settings import Settings, SettingsError, load_settings

    app = typer.Typer(
        help="interlock: feature flags, experiments and progressive delivery.",
        no_args_is_help=True,
        add_completion=False,
        pretty_exceptions_enable=False,
    )
    db_app = typer.Typer(help="Database schema and backups.", no_args_is_help=True)
    users_app = typer.Typer(help="UI accounts.", no_args_is_help=True)
    keys_app = typer.Typer(help="API keys.", no_args_is_help=True)
    audit_app = typer.Typer(help="The audit log.", no_args_is_help=True)
    app.add_typer(db_app, name="db")
    app.add_typer(users_app, name="users")
    app.add_typer(keys_app, name="keys")
    app.add_typer(audit_app, name="audit")

    def _settings(**overrides: Any) -> Settings:
        try:
            settings = load_settings(**overrides)
            settings.resolved_secret_key()
            return settings
        except SettingsError as exc:
            _fail(str(exc), 2)

    def _announce_to_stderr(first: Any) -> None:
        if first.admin_password:
            sys.stderr.write(
                f"interlock: created the first admin: {first.admin_email} / "
                f"{first.admin_password} (shown once)\n"
            )

    @contextmanager
    def _database(
        settings: Settings,
        prepare: bool = True,
        announce: Callable[[Any], None] = _announce_to_stderr,
        demo: bool = False,
    ) -> Iterator[Any]:
        """The database, migrated and seeded in embedded mode; current-schema checked otherwise.

        Demo data is loaded only on the first `serve` (demo=True), never by other commands.
        """
        from interlock.server import bootstrap
        from interlock.server.db.engine import Database
        from interlock.server.db.migrate import SchemaOutdated

        db = Database(settings.effective_database_url)
        try:
            if prepare:
                seed = settings if demo else settings.model_copy(update={"load_demo_data": False})
                announce(bootstrap.prepare(seed, db))
            yield db
        except SchemaOutdated as exc:
            _fail(str(exc))
        except OperationalError as exc:
            reason = str(exc.orig).strip().splitlines()[0] if exc.orig else str(exc)
            _fail(f"cannot use the database {settings.redacted()['database_url']}: {reason}")
        finally:
            db.dispose()

    def _cli_actor() -> Any:
        from interlock.server.audit.service import Actor

        user = os.environ.get("USER") or os.environ.get("LOGNAME") or "unknown"
        return Actor(type="cli", id=user, name=f"cli:{user}")

    @app.command()
    def serve(
        host: Annotated[str | None, typer.Option(help="Default INTERLOCK_HOST.")] = None,
        port: Annotated[int | None, typer.Option(help="Default INTERLOCK_PORT.")] = None,
        workers: Annotated[int | None, typer.Option(help="Worker processes.")] = None,
    ) -> None:
        """Serve the API (and UI) on HOST:PORT; SIGTERM drains in-flight requests, then exits."""
        import structlog

        from interlock.server import serving
        from interlock.server.logs import configure_logging

        given = {"host": host, "port": port, "workers": workers}
        settings = _settings(**{name: value for name, value in given.items() if value is not None})
        configure_logging(settings.log_level, settings.log_format)
        log = structlog.get_logger("interlock")
        log.info("configuration", **settings.redacted())

        def announce(first: Any) -> None:
            if first.admin_password:
                print(
                    f"\n  interlock admin login (shown once):\n"
                    f"    email:    {first.admin_email}\n"
                    f"    password: {first.admin_password}\n",
                    flush=True,
                )
            if first.demo_loaded:
                log.info("demo data loaded")

        with _database(settings, announce=announce, demo=True):
            pass
        url = f"http://{settings.host}:{settings.port}"
        log.info("serving", url=url, docs=f"{url}/docs", workers=settings.workers)
        serving.run(settings)

    @app.command()
    def worker(
        concurrency: Annotated[int, typer.Option(min=1, max=64, help="Job threads.")] = 2,
        queue: Annotated[
            list[str] | None,
            typer.Option(metavar="Q", help="Take jobs from this queue only (repeatable)."),
        ] = None,
        burst: Annotated[bool, typer.Option(help="Run what is queued, then exit.")] = False,
    ) -> None:
        """Run background jobs (Redis or PostgreSQL). SIGTERM lets running jobs finish."""
        import signal

        from interlock.server.jobs.runner import Runner
        from interlock.server.jobs.system import JobSystem
        from interlock.server.logs import configure_logging

        settings = _settings()
        configure_logging(settings.log_level, settings.log_format)
        with _database(settings) as db:
            try:
                system = JobSystem(settings, db)
            except SettingsError as exc:
                _fail(str(exc), 2)
            runner = Runner(system, concurrency=concurrency, queues=queue, burst=burst)

            def on_signal(signum: int, _frame: Any) -> None:
                sys.stderr.write(
                    f"interlock: {signal.Signals(signum).name}: finishing running jobs\n"
                )
                runner.request_stop()

            signal.signal(signal.SIGTERM, on_signal)
            signal.signal(signal.SIGINT, on_signal)
            runner.start()
            runner.wait()
            runner.stop()
            system.close()

    @db_app.command("upgrade")
    def db_upgrade() -> None:
        """Migrate the database schema to this version of interlock."""
        from interlock.server import bootstrap
        from interlock.server.db.migrate import current_revision, upgrade

        settings = _settings()
        with _database(settings, prepare=False) as db:
            before = current_revision(db.engine)
            upgrade(db.engine)
            after = current_revision(db.engine)
            first = bootstrap.ensure_initial_data(settings, db)
        sys.stderr.write(f"interlock: schema {before or 'empty'} -> {after}\n")
        if first.admin_password:
            sys.stderr.write(
                f"interlock: created the first admin: {first.admin_email} / "
                f"{first.admin_password} (shown once)\n"
            )

    @db_app.command("current")
    def db_current() -> None:
        """Print the schema revision of the database and the one this code needs."""
        from interlock.server.db.migrate import current_revision, head_revision

        settings = _settings()
        with _database(settings, prepare=False) as db:
            print(f"database: {current_revision(db.engine) or 'empty'}")
            print(f"code:     {head_revision()}")

    @db_app.command("backup")
    def db_backup(
        file: Annotated[Path, typer.Argument(help="Where to write the backup.")],
    ) -> None:
        """Write a consistent copy of the database to FILE; safe while the server runs."""
        from interlock.server.db import backup

        settings = _settings()
        try:
            info = backup.backup(settings.effective_database_url, file)
        except backup.BackupError as exc:
            _fail(str(exc))
        entries = "" if info.audit_entries is None else f", {info.audit_entries} audit entries"
        sys.stderr.write(
            f"interlock: backed up {settings.redacted()['database_url']} to {file} "
            f"({info.kind}, schema {info.revision}{entries}, {info.size} bytes)\n"
        )

    @db_app.command("restore")
    def db_restore(
        file: Annotated[Path, typer.Argument(help="A file written by `interlock db backup`.")],
    ) -> None:
        """Replace the database's contents with the backup in FILE. Stop the server first."""
        from interlock.server.db import backup

        settings = _settings()
        try:
            info = backup.restore(settings.effective_database_url, file)
        except backup.BackupError as exc:
            _fail(str(exc))
        sys.stderr.write(
            f"interlock: restored {file} into {settings.redacted()['database_url']} "
            f"(schema {info.revision})\n"
        )

    def _role(value: str) -> Any:
        from interlock.server.auth.roles import Role

        try:
            return Role(value)
        except ValueError:
            _fail(f"unknown role {value!r}; one of: {', '.join(r.value for r in Role)}", 2)

    def _scope(session: Any, project: str | None, environment: str | None) -> tuple[Any, Any]:
        from interlock.server.projects import service as projects

        if environment and not project:
            _fail("--environment needs --project", 2)
        found_project = found_environment = None
        if project:
            found_project = projects.find_project(session, project)
            if found_project is None:
                _fail(f"no project {project!r}", 2)
        if environment and found_project is not None:
            found_environment = next(
                (e for e in found_project.environments if e.key == environment), None
            )
            if found_environment is None:
                _fail(f"project {project!r} has no environment {environment!r}", 2)
        return found_project, found_environment

    def _run_service(call: Callable[[], Any]) -> Any:
        from interlock.server.problems import Problem

        try:
            return call()
        except Problem as exc:
            _fail(exc.detail, 2)

    @users_app.command("create")
    def users_create(
        email: Annotated[str, typer.Option(help="Login email.")],
        role: Annotated[str, typer.Option(help="admin, editor or viewer.")],
        project: Annotated[str | None, typer.Option(help="Scope the role to a project.")] = None,
        environment: Annotated[str | None, typer.Option(help="And to one environment.")] = None,
        name: Annotated[str, typer.Option(help="Display name.")] = "",
    ) -> None:
        """Create a UI account; the password is read from standard input."""
        from pydantic import ValidationError

        from interlock.server.auth import service
        from interlock.server.auth.schemas import UserCreate

        password = sys.stdin.readline().rstrip("\r\n")
        try:
            UserCreate(email=email, password=password, name=name)
        except ValidationError as exc:
            error = exc.errors()[0]
            _fail(f"{error['loc'][0]}: {error['msg']}", 2)
        settings = _settings()
        with _database(settings) as db, db.write_session() as session:
            found_project, found_environment = _scope(session, project, environment)
            binding = service.Binding(_role(role), found_project, found_environment)
            user = _run_service(
                lambda: service.create_user(
                    session,
                    _cli_actor(),
                    email=email,
                    password=password,
                    name=name,
                    bindings=[binding],
                    password_cost=settings.password_hash_cost,
                )
            )
            sys.stderr.write(f"interlock: created user {user.email} (id {user.id})\n")

    @keys_app.command("create")
    def keys_create(
        role: Annotated[str, typer.Option(help="admin, editor, viewer, sdk-server, sdk-client.")],
        project: Annotated[str | None, typer.Option(help="Project scope.")] = None,
        environment: Annotated[str | None, typer.Option(help="Environment scope.")] = None,
        name: Annotated[str, typer.Option(help="What the key is for.")] = "cli",
        expires_at: Annotated[
            datetime | None, typer.Option(help="Expiry (ISO 8601, UTC if no offset).")
        ] = None,
    ) -> None:
        """Create an API key and print it (only it) on standard output."""
        from datetime import UTC

        from interlock.server.auth import service

        if expires_at is not None and expires_at.tzinfo is None:
            expires_at = expires_at.replace(tzinfo=UTC)
        settings = _settings()
        with _database(settings) as db, db.write_session() as session:
            found_project, found_environment = _scope(session, project, environment)
            chosen_role = _role(role)
            key, value = _run_service(
                lambda: service.create_key(
                    session,
                    _cli_actor(),
                    name=name,
                    role=chosen_role,
                    project=found_project,
                    environment=found_environment,
                    expires_at=expires_at,
                )
            )
        sys.stderr.write(f"interlock: created key {key.id} ({key.role})\n")
        print(value)

    @keys_app.command("revoke")
    def keys_revoke(
        key_id: Annotated[int, typer.Argument(help="The key's id (from `keys list`).")],
        at: Annotated[
            datetime | None, typer.Option(help="Revoke at this time instead of now.")
        ] = None,
    ) -> None:
        """Revoke a key now, or at a time (to roll out its replacement first)."""
        from datetime import UTC

        from interlock.server.auth import service

        if at is not None and at.tzinfo is None:
            at = at.replace(tzinfo=UTC)
        settings = _settings()
        with _database(settings) as db, db.write_session() as session:
            key = _run_service(lambda: service.get_key(session, key_id))
            _run_service(lambda: service.revoke_key(session, _cli_actor(), key, at))
            sys.stderr.write(f"interlock: key {key_id} revoked from {key.revoked_at.isoformat()}\n")

    @keys_app.command("list")
    def keys_list(
        include_revoked: Annotated[bool, typer.Option(help="Show revoked keys too.")] = False,
    ) -> None:
        """List keys: id, role, scope, name, hint."""
        from interlock.server.auth import service

        settings = _settings()
        with _database(settings) as db, db.read_session() as session:
            cursor = None
            while True:
                keys, cursor = service.list_keys(
                    session,
                    project_ids=None,
                    limit=200,
                    cursor=cursor,
                    include_revoked=include_revoked,
                )
                for key in keys:
                    shown = service.key_snapshot(session, key)
                    scope = "/".join(filter(None, [shown["project"], shown["environment"]]))
                    print(f"{key.id}\t{key.role}\t{scope or '*'}\t{key.name}\t{key.hint}")
                if cursor is None:
                    break

    @audit_app.command("verify")
    def audit_verify() -> None:
        """Check the audit chain; exit 0 when intact, 1 at the first entry that is not."""
        from interlock.server.audit.service import verify
        from interlock.server.db.migrate import require_current_schema

        settings = _settings()
        # Embedded mode migrates first, like every command; on PostgreSQL verifying writes
        # nothing, so the schema must already be current.
        with _database(settings, prepare=settings.embedded) as db:
            if not settings.embedded:
                require_current_schema(db.engine)
            with db.read_session() as session:
                result = verify(session)
        if result.ok:
            print(f"audit chain intact: {result.checked} entries")
            return
        print(f"audit chain broken: {result.problem}")
        raise SystemExit(1)
