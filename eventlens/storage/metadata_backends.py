"""Connections for the metadata store: SQLite (embedded default) and MariaDB/MySQL via pymysql.

Each backend runs the store's portable SQL (written with ``?`` markers) and provides the one thing
that differs between the engines beyond connecting: an exclusive lock for migrations.
"""

from __future__ import annotations

import contextlib
import re
import sqlite3
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import parse_qs, unquote, urlsplit


class MetadataError(RuntimeError):
    """The metadata database is unreachable or in an unexpected state."""


class Backend(Protocol):
    display: str
    integrity_errors: tuple[type[Exception], ...]

    def execute(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]: ...
    def exclusive(self, name: str) -> contextlib.AbstractContextManager[None]: ...
    def ensure_connected(self) -> None: ...
    def close(self) -> None: ...


class SQLiteBackend:
    integrity_errors: tuple[type[Exception], ...] = (sqlite3.IntegrityError,)

    def __init__(self, path: str) -> None:
        if path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        self.display = f"sqlite://{path}" if path.startswith("/") else f"sqlite:///{path}"
        # isolation_level=None: autocommit, with explicit BEGIN where several statements must be
        # atomic. check_same_thread=False is safe because MetadataStore serialises access.
        self._conn = sqlite3.connect(path, timeout=30.0, isolation_level=None, check_same_thread=False)
        # busy_timeout first: switching to WAL needs a lock another process may briefly hold.
        self._conn.execute("PRAGMA busy_timeout = 30000")
        self._conn.execute("PRAGMA journal_mode = WAL")
        self._conn.execute("PRAGMA foreign_keys = ON")

    def execute(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        return self._conn.execute(sql, tuple(params)).fetchall()

    @contextlib.contextmanager
    def exclusive(self, name: str) -> Iterator[None]:
        # BEGIN IMMEDIATE takes the database write lock (waiting up to busy_timeout), so a second
        # process blocks here; SQLite DDL is transactional, so a failure leaves nothing behind.
        self._conn.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            self._conn.execute("ROLLBACK")
            raise
        self._conn.execute("COMMIT")

    def ensure_connected(self) -> None:
        """A SQLite file cannot drop its connection: nothing to check."""

    def close(self) -> None:
        self._conn.close()


_ER_BAD_DB_ERROR = 1049


class _UnknownDatabase(Exception):
    """The MySQL database named in the URL does not exist yet (it is then created)."""


class MySQLBackend:
    _LOCK_WAIT_S = 60

    def __init__(self, dsn: str) -> None:
        import pymysql  # imported here so the embedded (SQLite) setup never needs the driver

        self._pymysql = pymysql
        self.integrity_errors = (pymysql.err.IntegrityError,)
        self._params, self.database = _parse_mysql_dsn(dsn)
        self.display = redact(dsn)
        try:
            self._conn = self._connect(with_database=True)
        except _UnknownDatabase:
            # Connecting first and creating only when missing lets a user without CREATE
            # privilege use a database an administrator made for them.
            self._create_database()
            self._conn = self._connect(with_database=True)

    def _connect(self, *, with_database: bool) -> Any:
        params = dict(self._params, database=self.database if with_database else None)
        try:
            return self._pymysql.connect(**params)
        except self._pymysql.err.OperationalError as exc:
            if with_database and exc.args and exc.args[0] == _ER_BAD_DB_ERROR:
                raise _UnknownDatabase from exc
            raise MetadataError(f"cannot connect to {self.display}: {exc}") from exc

    def _create_database(self) -> None:
        # Identifiers cannot be bound parameters; the name was checked against a strict pattern.
        # utf8mb4_bin: ids compare byte-wise, exactly as on SQLite.
        conn = self._connect(with_database=False)
        try:
            with conn.cursor() as cur:
                cur.execute(
                    f"CREATE DATABASE IF NOT EXISTS `{self.database}` "
                    "CHARACTER SET utf8mb4 COLLATE utf8mb4_bin"
                )
        finally:
            conn.close()

    def ensure_connected(self) -> None:
        # Servers drop idle connections (wait_timeout) and restart; reconnect transparently before
        # each unit of work rather than retrying statements whose effect is unknown. PyMySQL 1.2
        # deprecates ping(reconnect=True) in favour of opening a new connection, which is this.
        try:
            self._conn.ping()
            return
        except self._pymysql.err.Error:
            with contextlib.suppress(Exception):
                self._conn.close()
        try:
            self._conn = self._connect(with_database=True)
        except _UnknownDatabase as exc:
            raise MetadataError(f"database of {self.display} no longer exists") from exc

    def execute(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        with self._conn.cursor() as cur:
            # The store's parameterised queries contain no literal "?" or "%", so swapping markers is
            # safe; statements without parameters (migration files) are sent untouched.
            if params:
                cur.execute(sql.replace("?", "%s"), tuple(params))
            else:
                cur.execute(sql)
            return list(cur.fetchall())

    @contextlib.contextmanager
    def exclusive(self, name: str) -> Iterator[None]:
        # MySQL DDL commits implicitly, so a transaction cannot serialise migrations; a named
        # server-wide lock (scoped by database, at most 64 chars) does.
        lock = f"eventlens:{self.database}:{name}"[:64]
        got = self.execute("SELECT GET_LOCK(?, ?)", (lock, self._LOCK_WAIT_S))
        if not got or got[0][0] != 1:
            raise MetadataError(f"timed out waiting for lock {lock!r} on {self.display}")
        try:
            yield
        finally:
            self.execute("SELECT RELEASE_LOCK(?)", (lock,))

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self._conn.close()


_DB_NAME_RE = re.compile(r"^[A-Za-z0-9_]{1,64}$")


def _parse_mysql_dsn(dsn: str) -> tuple[dict[str, Any], str]:
    parts = urlsplit(dsn)
    database = unquote(parts.path.lstrip("/"))
    if not _DB_NAME_RE.match(database):
        raise ValueError(f"metadata url needs a database name of letters, digits and _: {redact(dsn)}")
    params: dict[str, Any] = {
        "host": parts.hostname or "127.0.0.1",
        "port": parts.port or 3306,
        "user": unquote(parts.username) if parts.username else "root",
        "password": unquote(parts.password) if parts.password else "",
        "charset": "utf8mb4",
        "autocommit": True,
        "connect_timeout": 10,
        # Bounded so a hung server fails loudly; above the migration lock wait.
        "read_timeout": 120,
        "write_timeout": 120,
    }
    for key, values in parse_qs(parts.query).items():
        if key == "unix_socket":
            params["unix_socket"] = values[-1]
        elif key == "ssl_ca":
            params["ssl"] = {"ca": values[-1]}
        else:
            raise ValueError(f"unsupported metadata url option {key!r} (known: unix_socket, ssl_ca)")
    return params, database


def redact(dsn: str) -> str:
    """The DSN without its password, for messages and logs."""
    parts = urlsplit(dsn)
    if parts.password is None:
        return dsn
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return parts._replace(netloc=netloc).geturl()


def sqlite_path(dsn: str) -> str:
    """The file path of a ``sqlite://`` URL (or ``:memory:``)."""
    # Both sqlite:///abs/file and sqlite:////abs/file (what Settings.metadata_dsn produces) mean
    # /abs/file; sqlite://rel/file is relative to the working directory.
    rest = dsn[len("sqlite://") :]
    if rest in (":memory:", "/:memory:"):
        return ":memory:"
    if not rest or rest == "/":
        raise ValueError(
            "sqlite metadata url needs a file path, e.g. sqlite:///var/lib/eventlens/meta.sqlite3"
        )
    if rest.startswith("/"):
        return "/" + rest.lstrip("/")
    return str(Path(rest).resolve())
