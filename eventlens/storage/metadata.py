"""Metadata store: projects, API clients, goals and daily salts, in SQLite (embedded) or MariaDB/MySQL.

The same SQL runs on both engines; connecting, parameter markers and locking differ and live in
``metadata_backends``. Metadata traffic is tiny (admin commands, auth look-ups that callers
cache), so one connection guarded by a lock is enough, and it keeps both drivers — neither is safe
to share between threads — correct under Ray's threaded actors.
"""

from __future__ import annotations

import contextlib
import json
import re
import secrets
import threading
from collections.abc import Iterable, Sequence
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any, Literal, cast, get_args

from pydantic import BaseModel, ConfigDict

from eventlens.goals import MAX_GOALS, Goal, GoalSpec
from eventlens.security import (
    generate_client_id,
    generate_project_id,
    generate_secret,
    hash_secret,
    normalize_origin,
    origin_allowed,
)
from eventlens.storage.metadata_backends import (
    Backend,
    MetadataError,
    MySQLBackend,
    SQLiteBackend,
    redact,
    sqlite_path,
)
from eventlens.storage.migrations import (
    METADATA_DIR,
    MetadataLedger,
    MigrationError,
    MigrationStatus,
    apply_migrations,
    migration_status,
)

__all__ = [
    "CLIENT_TYPES",
    "DEFAULT_CURRENCY",
    "Client",
    "ClientType",
    "Goal",
    "GoalSpec",
    "MetadataError",
    "MetadataStore",
    "MigrationError",
    "MigrationStatus",
    "Project",
    "normalize_currency",
    "open_metadata",
]

ClientType = Literal["write", "read", "root"]
CLIENT_TYPES: tuple[str, ...] = get_args(ClientType)

# Ids are lowercase so that lookups behave the same on SQLite (binary compare) and on a MariaDB
# database whose default collation may be case-insensitive.
_PROJECT_ID_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
_MAX_NAME = 255
# an ISO-4217-style currency code: three letters, stored upper-case
_CURRENCY_RE = re.compile(r"^[A-Za-z]{3}$")
DEFAULT_CURRENCY = "USD"


def normalize_currency(code: str) -> str:
    """``code`` upper-cased if it is three letters; else ``ValueError``."""
    if not isinstance(code, str) or not _CURRENCY_RE.match(code):
        raise ValueError(f"currency {str(code)[:20]!r} must be a 3-letter ISO-4217 code such as USD or EUR")
    return code.upper()


# --- models -----------------------------------------------------------------------------------
class Project(BaseModel):
    model_config = ConfigDict(frozen=True)

    id: str
    name: str
    created_at: datetime
    currency: str = DEFAULT_CURRENCY  # the default currency of its revenue events


class Client(BaseModel):
    model_config = ConfigDict(frozen=True)

    id: str
    project_id: str
    name: str
    type: ClientType
    secret_hash: str | None
    origins: list[str]
    created_at: datetime
    # the project's default currency, read with the client (callers cache clients for a while)
    project_currency: str = DEFAULT_CURRENCY

    @property
    def can_write(self) -> bool:
        return self.type in ("write", "root")

    @property
    def can_read(self) -> bool:
        return self.type in ("read", "root")

    @property
    def has_secret(self) -> bool:
        return self.secret_hash is not None

    def allows_origin(self, origin: str | None) -> bool:
        """Whether a browser request from ``origin`` may use this (secret-less) client."""
        return origin_allowed(origin, self.origins)


# --- the store --------------------------------------------------------------------------------
def _now() -> datetime:
    return datetime.now(UTC)


def _ts(value: datetime) -> str:
    # Fixed-width ISO-8601 in UTC, so text order is time order on both engines.
    return value.astimezone(UTC).isoformat(timespec="microseconds")


class MetadataStore:
    """Projects, clients and salts. Use :func:`open_metadata` to get one; call :meth:`migrate` once
    before first use. All methods are thread-safe."""

    def __init__(self, backend: Backend) -> None:
        self._backend = backend
        self._lock = threading.RLock()
        self._closed = False

    def __enter__(self) -> MetadataStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"MetadataStore({self._backend.display!r})"

    @property
    def url(self) -> str:
        """The connection URL, password redacted."""
        return self._backend.display

    def _query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        with self._lock:
            if self._closed:
                raise MetadataError("metadata store is closed")
            self._backend.ensure_connected()
            return self._backend.execute(sql, params)

    # migrations ------------------------------------------------------------------------------
    def migrate(self, directory: Path | None = None) -> list[str]:
        """Apply pending ``NNNN_name.sql`` migrations in order; returns the names newly applied.

        Each migration runs under an exclusive lock and re-checks the ledger after taking it, so
        concurrent callers in several processes apply each migration exactly once. An applied
        migration whose file was edited since raises ``MigrationError`` naming the file.
        """
        with self._lock:
            return apply_migrations(self._ledger(), directory or METADATA_DIR)

    def migration_status(self, directory: Path | None = None) -> list[MigrationStatus]:
        """Applied and pending migrations, with whether each applied file is unchanged."""
        with self._lock:
            return migration_status(self._ledger(), directory or METADATA_DIR)

    def _ledger(self) -> MetadataLedger:
        # the caller holds self._lock, which serialises use of the backend's connection
        if self._closed:
            raise MetadataError("metadata store is closed")
        self._backend.ensure_connected()
        return MetadataLedger(self._backend)

    # projects --------------------------------------------------------------------------------
    def create_project(self, name: str, id: str | None = None) -> Project:
        name = name.strip()
        if not name or len(name) > _MAX_NAME:
            raise ValueError(f"project name must be 1-{_MAX_NAME} characters")
        if id is not None and not _PROJECT_ID_RE.match(id):
            raise ValueError(f"project id {id!r} must be 1-64 of a-z, 0-9, '-' and '_'")
        created = _now()
        for _ in range(3):  # a generated id collides only by (astronomical) chance; retry then
            project = Project(id=id or generate_project_id(), name=name, created_at=created)
            try:
                self._query(
                    "INSERT INTO projects (id, name, created_at) VALUES (?, ?, ?)",
                    (project.id, project.name, _ts(created)),
                )
                return project
            except self._backend.integrity_errors:
                if id is not None:
                    raise ValueError(f"project {id!r} already exists") from None
        raise MetadataError("could not generate a unique project id")

    def get_project(self, id: str) -> Project | None:
        rows = self._query("SELECT id, name, created_at, currency FROM projects WHERE id = ?", (id,))
        return _project(rows[0]) if rows else None

    def list_projects(self) -> list[Project]:
        rows = self._query("SELECT id, name, created_at, currency FROM projects ORDER BY created_at, id")
        return [_project(r) for r in rows]

    def set_project_currency(self, id: str, currency: str) -> Project:
        """Set a project's default currency (three letters, stored upper-case). Revenue events
        stored before keep the currency they were stored with; ingest replicas pick the new one
        up when they re-read the client (``Authenticator.ttl_s``)."""
        code = normalize_currency(currency)
        if self.get_project(id) is None:
            raise ValueError(f"unknown project {id!r}")
        self._query("UPDATE projects SET currency = ? WHERE id = ?", (code, id))
        project = self.get_project(id)
        assert project is not None
        return project

    # clients ---------------------------------------------------------------------------------
    def create_client(
        self,
        project_id: str,
        type: str,
        *,
        name: str = "",
        origins: Iterable[str] = (),
        with_secret: bool = True,
    ) -> tuple[Client, str | None]:
        """Create a client; returns it with its plain secret, which is not stored and cannot be
        shown again (None for a secret-less browser client)."""
        if type not in CLIENT_TYPES:
            raise ValueError(f"client type must be one of {', '.join(CLIENT_TYPES)}, not {type!r}")
        name = name.strip()
        if len(name) > _MAX_NAME:
            raise ValueError(f"client name must be at most {_MAX_NAME} characters")
        normalized = list(dict.fromkeys(normalize_origin(o) for o in origins))
        if not with_secret:
            # A browser can hold no secret, so its only credential is the Origin check: it may only
            # send events, and only from listed origins.
            if type != "write":
                raise ValueError("a client without a secret must be of type 'write'")
            if not normalized:
                raise ValueError("a client without a secret needs at least one allowed origin")
        if self.get_project(project_id) is None:
            raise ValueError(f"unknown project {project_id!r}")
        secret = generate_secret() if with_secret else None
        # scrypt is deliberately slow; hash before taking the store lock.
        secret_hash = hash_secret(secret) if secret is not None else None
        client = Client(
            id=generate_client_id(),
            project_id=project_id,
            name=name,
            type=cast(ClientType, type),  # checked against CLIENT_TYPES above
            secret_hash=secret_hash,
            origins=normalized,
            created_at=_now(),
        )
        self._query(
            "INSERT INTO clients (id, project_id, name, type, secret_hash, origins, created_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?)",
            (
                client.id,
                client.project_id,
                client.name,
                client.type,
                client.secret_hash,
                json.dumps(client.origins),
                _ts(client.created_at),
            ),
        )
        return client, secret

    def rotate_secret(self, client_id: str) -> tuple[Client, str]:
        """Give a client a new secret (returned once, like at creation); the old one stops working
        once the replicas' authentication caches re-read the client (``Authenticator.ttl_s``)."""
        client = self.get_client(client_id)
        if client is None:
            raise ValueError(f"unknown client {client_id!r}")
        if not client.has_secret:
            raise ValueError("a browser client has no secret to rotate: it is authenticated by its origins")
        secret = generate_secret()
        secret_hash = hash_secret(secret)
        self._query("UPDATE clients SET secret_hash = ? WHERE id = ?", (secret_hash, client_id))
        return client.model_copy(update={"secret_hash": secret_hash}), secret

    def get_client(self, client_id: str) -> Client | None:
        rows = self._query(f"SELECT {_CLIENT_COLUMNS} FROM {_CLIENT_FROM} WHERE c.id = ?", (client_id,))
        return _client(rows[0]) if rows else None

    def list_clients(self, project_id: str | None = None) -> list[Client]:
        if project_id is None:
            rows = self._query(f"SELECT {_CLIENT_COLUMNS} FROM {_CLIENT_FROM} ORDER BY c.created_at, c.id")
        else:
            rows = self._query(
                f"SELECT {_CLIENT_COLUMNS} FROM {_CLIENT_FROM} WHERE c.project_id = ?"
                " ORDER BY c.created_at, c.id",
                (project_id,),
            )
        return [_client(r) for r in rows]

    # goals ---------------------------------------------------------------------------------
    def create_goal(self, project_id: str, spec: GoalSpec) -> Goal:
        """Add a goal to a project; ``ValueError`` for an unknown project, a name the project
        already has, or a project at ``MAX_GOALS``. ``spec`` is validated (pydantic)."""
        spec = GoalSpec.model_validate(spec.model_dump())  # re-checked: a caller may have built it loosely
        if self.get_project(project_id) is None:
            raise ValueError(f"unknown project {project_id!r}")
        existing = self.list_goals(project_id)
        if any(g.name == spec.name for g in existing):
            raise ValueError(f"project {project_id!r} already has a goal named {spec.name!r}")
        if len(existing) >= MAX_GOALS:
            raise ValueError(f"a project has at most {MAX_GOALS} goals")
        prop = spec.property
        goal = Goal(
            id=secrets.token_hex(8),
            project_id=project_id,
            name=spec.name,
            kind=spec.kind,
            path=spec.path,
            event=spec.event,
            property_key=prop.key if prop else None,
            property_value=prop.value if prop else None,
            created_at=_now(),
        )
        try:
            self._query(
                f"INSERT INTO goals ({_GOAL_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    goal.id,
                    goal.project_id,
                    goal.name,
                    goal.kind,
                    goal.path,
                    goal.event,
                    goal.property_key,
                    goal.property_value,
                    _ts(goal.created_at),
                ),
            )
        except self._backend.integrity_errors:
            # created concurrently under the same name
            raise ValueError(f"project {project_id!r} already has a goal named {spec.name!r}") from None
        return goal

    def list_goals(self, project_id: str) -> list[Goal]:
        """The project's goals, oldest first."""
        rows = self._query(
            f"SELECT {_GOAL_COLUMNS} FROM goals WHERE project_id = ? ORDER BY created_at, id", (project_id,)
        )
        return [_goal(r) for r in rows]

    def get_goal(self, project_id: str, goal_id: str) -> Goal | None:
        rows = self._query(
            f"SELECT {_GOAL_COLUMNS} FROM goals WHERE project_id = ? AND id = ?", (project_id, goal_id)
        )
        return _goal(rows[0]) if rows else None

    def delete_goal(
        self, project_id: str, goal_id: str | None = None, *, name: str | None = None
    ) -> Goal | None:
        """Remove a goal by id or by name; returns it, or None when the project has no such goal."""
        if (goal_id is None) == (name is None):
            raise ValueError("give a goal id or a goal name")
        if goal_id is not None:
            goal = self.get_goal(project_id, goal_id)
        else:
            goal = next((g for g in self.list_goals(project_id) if g.name == name), None)
        if goal is None:
            return None
        self._query("DELETE FROM goals WHERE project_id = ? AND id = ?", (project_id, goal.id))
        return goal

    # salts -----------------------------------------------------------------------------------
    def get_or_create_salt(self, day: date | str) -> str:
        """The salt of ``day`` (UTC), or of a rotation period key of at most 10 characters, created
        on first request. Every process gets the same value: the first insert wins and everyone
        reads back the stored row."""
        key = day.isoformat() if isinstance(day, date) else day
        if not 0 < len(key) <= 10:
            raise ValueError("a salt key has 1 to 10 characters")
        rows = self._query("SELECT salt FROM salts WHERE day = ?", (key,))
        if rows:
            return str(rows[0][0])
        # If another process inserted first, the duplicate key is expected: we read theirs back.
        with contextlib.suppress(*self._backend.integrity_errors):
            self._query(
                "INSERT INTO salts (day, salt, created_at) VALUES (?, ?, ?)",
                (key, secrets.token_hex(32), _ts(_now())),
            )
        rows = self._query("SELECT salt FROM salts WHERE day = ?", (key,))
        if not rows:
            raise MetadataError(f"salt for {key} vanished after insert")
        return str(rows[0][0])

    # lifecycle -------------------------------------------------------------------------------
    def ping(self) -> None:
        """Raise if the database cannot answer a trivial query."""
        self._query("SELECT 1")

    def close(self) -> None:
        with self._lock:
            if not self._closed:
                self._closed = True
                self._backend.close()


_CLIENT_COLUMNS = "c.id, c.project_id, c.name, c.type, c.secret_hash, c.origins, c.created_at, p.currency"
_CLIENT_FROM = "clients AS c JOIN projects AS p ON p.id = c.project_id"


_GOAL_COLUMNS = "id, project_id, name, kind, path, event, property_key, property_value, created_at"


def _goal(row: tuple[Any, ...]) -> Goal:
    return Goal(
        id=row[0],
        project_id=row[1],
        name=row[2],
        kind=row[3],
        path=row[4],
        event=row[5],
        property_key=row[6],
        property_value=row[7],
        created_at=datetime.fromisoformat(row[8]),
    )


def _project(row: tuple[Any, ...]) -> Project:
    return Project(id=row[0], name=row[1], created_at=datetime.fromisoformat(row[2]), currency=row[3])


def _client(row: tuple[Any, ...]) -> Client:
    return Client(
        id=row[0],
        project_id=row[1],
        name=row[2],
        type=row[3],
        secret_hash=row[4],
        origins=json.loads(row[5]),
        created_at=datetime.fromisoformat(row[6]),
        project_currency=row[7],
    )


def open_metadata(dsn: str) -> MetadataStore:
    """Open ``sqlite:///path/file.sqlite3`` or ``mysql://user:pass@host:port/db`` (database created
    if missing). Does not migrate."""
    if dsn.startswith("sqlite://"):
        return MetadataStore(SQLiteBackend(sqlite_path(dsn)))
    if dsn.startswith("mysql://"):
        return MetadataStore(MySQLBackend(dsn))
    raise ValueError(f"metadata url must start with sqlite:// or mysql://, got {redact(dsn)!r}")
