"""oauth.db: registered clients, authorization codes and refresh tokens (SQLite).

The file sits next to the keys in api/oauth/ and, like them, is created when missing
(by loop-auth on start, or by whichever process opens it first) and never replaced.
Both containers open it through the same bind mount, so SQLite's file locks serialize
them. The default rollback journal (not WAL) keeps everything in the one file, which is
what a backup of `keys/` and `oauth.db` copies.
"""

from __future__ import annotations

import os
import sqlite3
import threading

from .signing import OAUTH_DIR

DB_FILE = OAUTH_DIR / "oauth.db"

TABLES: dict[str, list[tuple[str, str]]] = {
    "clients": [
        ("client_id", "TEXT PRIMARY KEY"),
        ("client_secret", "TEXT"),
        ("client_name", "TEXT"),
        ("redirect_uris", "TEXT"),          # JSON list
        ("token_endpoint_auth_method", "TEXT"),
        ("metadata", "TEXT"),               # the registration request, JSON
        ("created", "TEXT"),
    ],
    "codes": [
        ("code", "TEXT PRIMARY KEY"),
        ("client_id", "TEXT"),
        ("redirect_uri", "TEXT"),
        ("code_challenge", "TEXT"),
        ("scope", "TEXT"),
        ("resource", "TEXT"),
        ("expires", "REAL"),
    ],
    "refresh_tokens": [
        ("token", "TEXT PRIMARY KEY"),
        ("client_id", "TEXT"),
        ("scope", "TEXT"),
        ("resource", "TEXT"),
        ("expires", "REAL"),
    ],
}

_schema_lock = threading.Lock()
_schema_ready = False


def _ensure_schema(db: sqlite3.Connection) -> None:
    """Create missing tables and add missing columns; never drops or rewrites anything."""
    db.execute("BEGIN IMMEDIATE")
    try:
        for table, columns in TABLES.items():
            db.execute(f"CREATE TABLE IF NOT EXISTS {table} ({', '.join(f'{n} {t}' for n, t in columns)})")
            present = {row[1] for row in db.execute(f"PRAGMA table_info({table})")}
            for name, sql_type in columns:
                if name not in present:
                    db.execute(f"ALTER TABLE {table} ADD COLUMN {name} {sql_type.replace(' PRIMARY KEY', '')}")
        db.execute("COMMIT")
    except BaseException:
        db.execute("ROLLBACK")
        raise


def connect() -> sqlite3.Connection:
    """A connection to oauth.db (created mode 600 if missing), schema ensured once per process."""
    global _schema_ready
    OAUTH_DIR.mkdir(parents=True, exist_ok=True)
    try:
        os.close(os.open(DB_FILE, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    except FileExistsError:
        pass
    db = sqlite3.connect(DB_FILE, timeout=10, isolation_level=None)
    db.row_factory = sqlite3.Row
    if not _schema_ready:
        with _schema_lock:
            if not _schema_ready:
                _ensure_schema(db)
                _schema_ready = True
    return db
