"""The only reader of ``EVENTLENS_*``: one pydantic settings model.

Precedence, highest first, written once in ``resolve_settings``: an explicit CLI flag, then the
Serve config's ``args:`` (and its ``http_options`` host and port), then ``EVENTLENS_*`` environment
variables, then the defaults below, which give a fully embedded single-machine daemon: chDB under
the data directory, SQLite metadata, no Redis.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

DEFAULT_IP_HEADERS = (
    "x-client-ip",
    "x-forwarded-for",
    "cf-connecting-ip",
    "true-client-ip",
    "x-real-ip",
    "fastly-client-ip",
    "x-cluster-client-ip",
    "forwarded-for",
    "forwarded",
)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="EVENTLENS_", extra="forbid", frozen=True)

    # where and who
    data_dir: Path = Field(default=Path("./eventlens-data"), description="Root of all local state")
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65535)
    instance: str = Field(
        default="default",
        pattern=r"^[a-z0-9][a-z0-9-]{0,30}$",
        description="Prefix of actor names, so several daemons can share one Ray cluster",
    )
    ray_address: str | None = Field(default=None, description="Join this Ray cluster (else start one)")
    metrics_port: int | None = Field(
        default=None,
        ge=1,
        le=65535,
        description="When the daemon starts Ray itself: the port of Ray's metrics agent (Prometheus "
        "format, /metrics); else Ray picks one. A cluster sets it with `ray start --metrics-export-port`",
    )

    # storage back ends
    clickhouse_url: str | None = Field(
        default=None, description="http(s)://user:pass@host:8123 or chdb://dir; default chDB in data_dir"
    )
    clickhouse_database: str = Field(default="eventlens", pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")
    # goes into DDL text: the same strict pattern as eventlens.storage.cluster_ddl.CLUSTER_RE
    clickhouse_cluster: str | None = Field(
        default=None,
        pattern=r"^[A-Za-z_][A-Za-z0-9_-]{0,62}$",
        description="A ClickHouse server's cluster (remote_servers): ON CLUSTER DDL, Replicated*MergeTree "
        "local tables behind Distributed tables; needs a server URL",
    )
    metadata_url: str | None = Field(
        default=None, description="mysql://user:pass@host:3306/db or sqlite:///file; default SQLite"
    )
    redis_url: str | None = Field(default=None, description="redis://host:6379/0 enables shared mode")
    redis_require_durable: bool = Field(
        default=False,
        description="Refuse to start when Redis (holding the write-ahead logs) is not AOF + fsync always",
    )

    # serving
    # two ingest replicas: one Python process tops out near 13k batched events/s on two cores
    ingest_replicas: int = Field(default=2, ge=1)
    insights_replicas: int = Field(default=1, ge=1)
    # On a cluster, 1 puts an ingest replica on every node (as many replicas as nodes) and gives a
    # node that (re)joins a replica, and so a proxy, back; unset, Serve packs them as it likes.
    ingest_max_replicas_per_node: int | None = Field(default=None, ge=1)
    max_ongoing_requests: int = Field(default=256, ge=1)
    # Load shedding at the door: a request waiting for one of an ingest replica's
    # max_ongoing_requests slots counts against this; past it Serve answers 503 + Retry-After
    # itself (BackpressureConfig) instead of letting the queue grow into client timeouts.
    ingest_max_queued_requests: int = Field(
        default=1024, ge=-1, description="Per ingest replica; -1 queues without limit"
    )
    ingest_retry_after_s: int = Field(
        default=1, ge=0, le=3600, description="Retry-After of the 503 that sheds ingest load"
    )
    insights_cache_ttl_s: int = Field(
        default=300, ge=0, le=300, description="Insight response cache lifetime; 0 turns caching off"
    )
    haproxy: bool = True
    throughput_optimized: bool = True
    # NoDecode: the variable is a comma-separated list, not JSON (split by _split_headers)
    ip_headers: Annotated[tuple[str, ...], NoDecode] = DEFAULT_IP_HEADERS
    geo_database: str | None = Field(
        default=None, description="Path to a fresher MaxMind-format city database (GeoLite2, DB-IP)"
    )

    # ingest limits
    max_body_bytes: int = Field(default=5 * 1024 * 1024, ge=1024)
    max_batch_events: int = Field(default=2000, ge=1000)
    max_properties: int = Field(default=256, ge=1)
    max_property_key_length: int = Field(default=256, ge=1)
    max_property_value_length: int = Field(default=4096, ge=1)
    # a session replay chunk's rrweb events (JSON text, UTF-8 bytes); the web SDK splits at 1 MiB
    replay_max_bytes: int = Field(default=1024 * 1024, ge=1024, le=4 * 1024 * 1024)
    rate_limit_per_second: float = Field(default=2000.0, gt=0)
    rate_limit_burst: int = Field(default=4000, ge=1)

    # shards, write-ahead log and flushing
    # one shard on two cores: every shard flushes its own inserts, each with a fixed cost in
    # chDB (the rollup views) that two shards pay twice; add shards with cores
    shards: int = Field(default=1, ge=1, le=1024)
    handoff_ms: float = Field(
        default=2.0, ge=0, description="Replica collects events this long per shard call"
    )
    handoff_max_in_flight: int = Field(
        default=2, ge=1, le=16, description="Calls per shard a replica keeps in flight at once"
    )
    flush_max_events: int = Field(default=20000, ge=1)
    flush_insert_threads: int = Field(
        default=2, ge=1, le=8, description="Inserts a shard keeps in flight while building the next"
    )
    flush_max_age_ms: int = Field(default=1000, ge=10)
    wal_fsync: Literal["always", "never"] = "always"
    wal_max_pending_events: int = Field(
        default=1_000_000, ge=1, description="Per shard; beyond it ingest answers 503"
    )
    flush_retry_max_s: float = Field(default=5.0, gt=0)
    # json: a JSONEachRow body built in the shard, parsed by ClickHouse in C++ (cheapest end to end
    # on one machine); columnar: clickhouse-connect's Native columns (less ClickHouse-server CPU,
    # more Python CPU in the shards: for a busy shared server)
    insert_format: Literal["json", "columnar"] = "json"

    # sessions and presence
    session_timeout_s: int = Field(default=1800, ge=60)
    salt_rotation_s: int = Field(
        default=86400, ge=10, description="Device-hash salt period; 86400 = a new salt each UTC day"
    )
    live_window_s: int = Field(default=300, ge=10)
    presence_push_ms: int = Field(default=200, ge=10)
    max_future_skew_s: int = Field(default=60, ge=0)
    late_event_bound_s: int = Field(default=3600, ge=60)
    idempotency_window_days: int = Field(
        default=7,
        ge=0,
        le=90,
        description="A retried event id received within this many days is stored once; 0: only the"
        " shard's memory of recent ids and its log (for load tests)",
    )

    create_demo: bool = True

    @field_validator("ip_headers", mode="before")
    @classmethod
    def _split_headers(cls, v: Any) -> Any:
        if isinstance(v, str):
            return tuple(h.strip().lower() for h in v.split(",") if h.strip())
        return v

    @model_validator(mode="after")
    def _check_urls(self) -> Settings:
        if self.clickhouse_url and not self.clickhouse_url.startswith(("chdb://", "http://", "https://")):
            raise ValueError("clickhouse_url must start with chdb://, http:// or https://")
        if self.clickhouse_cluster and self.embedded_clickhouse:
            raise ValueError(
                "clickhouse_cluster needs a ClickHouse server (clickhouse_url=http(s)://...): "
                "embedded chDB has no clusters, replication or Distributed tables"
            )
        if self.metadata_url and not self.metadata_url.startswith(("sqlite://", "mysql://")):
            raise ValueError("metadata_url must start with sqlite:// or mysql://")
        if self.redis_url and not self.redis_url.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError("redis_url must start with redis://, rediss:// or unix://")
        return self

    # derived values -------------------------------------------------------------------------
    @property
    def clickhouse_dsn(self) -> str:
        return self.clickhouse_url or f"chdb://{self.data_dir.resolve() / 'clickhouse'}"

    @property
    def embedded_clickhouse(self) -> bool:
        return self.clickhouse_dsn.startswith("chdb://")

    @property
    def metadata_dsn(self) -> str:
        return self.metadata_url or f"sqlite:///{self.data_dir.resolve() / 'metadata.sqlite3'}"

    @property
    def wal_dir(self) -> Path:
        return self.data_dir.resolve() / "wal"

    @property
    def namespace(self) -> str:
        return "eventlens"

    def actor_name(self, role: str) -> str:
        return f"{self.instance}-{role}"

    def to_args(self) -> dict[str, Any]:
        """Plain, picklable values to rebuild these settings in another process."""
        return self.model_dump(mode="json")


def resolve_settings(
    cli: Mapping[str, Any] | None = None, config: Mapping[str, Any] | None = None
) -> Settings:
    """Explicit CLI flags (None = not given) over Serve config ``args:`` over ``EVENTLENS_*`` over
    defaults: keyword arguments beat the environment in pydantic-settings, so the first two are
    merged here and the environment fills in the rest."""
    flags = {k: v for k, v in (cli or {}).items() if v is not None}
    return Settings(**{**(config or {}), **flags})


def load_settings(**overrides: Any) -> Settings:
    """Settings from the environment, with explicit overrides (None values are ignored)."""
    return resolve_settings(overrides)
