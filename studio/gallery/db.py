"""The gallery's SQLite file: engine with per-connection pragmas, and migrations at start.

Every connection gets WAL, foreign keys and a busy timeout (set on connect, so pooled
connections all have them). Python 3.11's sqlite3 driver does not BEGIN by itself before a
SELECT or DDL; we turn that off and emit BEGIN ourselves (SQLAlchemy's documented recipe), so
migrations are transactional, and writers say ``BEGIN IMMEDIATE`` so two writers never
deadlock on a read lock they both want to upgrade.

``migrate`` runs Alembic programmatically (script location inside this package, no
alembic.ini), with foreign keys off for the run (a table rebuild must not cascade), checked
before commit (``PRAGMA foreign_key_check``). Before upgrading an existing database it copies it with SQLite's online backup
API to ``<db>.bak-<old revision>-<UTC time>``.
"""

from __future__ import annotations

import re
import sqlite3
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from sqlalchemy import Engine, create_engine, event, inspect, text

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
BUSY_TIMEOUT_MS = 30_000


def make_engine(db_path: Path) -> Engine:
    engine = create_engine(f"sqlite:///{db_path}", pool_size=8, max_overflow=8, pool_timeout=60)

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection, _record) -> None:  # noqa: ANN001 - DB-API types
        dbapi_connection.isolation_level = None      # we emit BEGIN (see module doc)
        cursor = dbapi_connection.cursor()
        cursor.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA journal_mode = WAL")
        cursor.execute("PRAGMA synchronous = NORMAL")   # WAL + NORMAL: durable at checkpoints, never corrupt
        cursor.execute("PRAGMA foreign_keys = ON")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn) -> None:  # noqa: ANN001
        immediate = conn.get_execution_options().get("sqlite_immediate", False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

    return engine


def alembic_config():
    """Alembic is imported only to migrate: a database at head opens without it (start-up time)."""
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    return cfg


_REVISION = re.compile(r'^(down_revision|revision)\s*=\s*(?:"([^"]*)"|None)', re.M)


def head_revision() -> str:
    """The newest revision: the one no other revision names as its parent (read from the revision
    files, as alembic does; a test checks the two agree)."""
    revisions, parents = set(), set()
    for path in (MIGRATIONS / "versions").glob("[0-9]*.py"):
        found = dict((key, value) for key, value in _REVISION.findall(path.read_text(encoding="utf-8")))
        revisions.add(found["revision"])
        if found.get("down_revision"):
            parents.add(found["down_revision"])
    [head] = revisions - parents
    return head


@dataclass(frozen=True, slots=True)
class MigrationReport:
    before: str | None          # None: a new database
    after: str
    backup: Path | None = None

    @property
    def upgraded(self) -> bool:
        return self.before != self.after


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as conn:
        if not inspect(conn).has_table("alembic_version"):
            return None
        return conn.execute(text("SELECT version_num FROM alembic_version")).scalar()


def backup_database(db_path: Path, label: str) -> Path:
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S%f")
    target = db_path.with_name(f"{db_path.name}.bak-{label}-{stamp}")
    src = sqlite3.connect(db_path)
    try:
        dst = sqlite3.connect(target)
        try:
            src.backup(dst)
        finally:
            dst.close()
    finally:
        src.close()
    return target


def migrate(engine: Engine, db_path: Path, target: str = "head") -> MigrationReport:
    """Bring the database to ``target`` (default the newest revision); back it up first if it
    already held data at an older revision."""
    before = current_revision(engine)
    wanted = head_revision() if target == "head" else target
    if before == wanted:
        return MigrationReport(before, wanted)
    from alembic import command

    backup = backup_database(db_path, before) if before is not None else None
    cfg = alembic_config()
    with engine.connect() as conn:
        # SQLite's table-rebuild procedure: foreign keys off (it is a no-op inside a transaction, so
        # before BEGIN), or dropping the old table would cascade-delete every row that points at it
        raw = conn.connection.driver_connection
        raw.execute("PRAGMA foreign_keys = OFF")
        try:
            with conn.begin():
                cfg.attributes["connection"] = conn
                command.upgrade(cfg, target)
                broken = conn.exec_driver_sql("PRAGMA foreign_key_check").all()
                if broken:
                    raise RuntimeError(f"migration to {wanted} left rows pointing nowhere: {broken[:5]}")
        finally:
            raw.execute("PRAGMA foreign_keys = ON")
    return MigrationReport(before, current_revision(engine) or "", backup)
