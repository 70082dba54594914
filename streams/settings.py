"""Configuration: built once at the entry point from, highest precedence first,

1. environment variables prefixed STREAMRANK_ (e.g. STREAMRANK_PARTITIONS=8),
2. a secrets directory (STREAMRANK_SECRETS_DIR): one file per setting, named like the variable
   (STREAMRANK_SASL_PASSWORD), holding its value, as Docker and Kubernetes mount secrets,
3. a TOML file: STREAMRANK_CONFIG_FILE (or `streamrank --config FILE`), else ./streamrank.toml
   when present; top-level keys are the setting names (`partitions = 8`),
4. the defaults below.

Each field is documented because docs/configuration.md comes from here (`streamrank docs`).
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, ValidationError, model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SecretsSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from contracts import MAX_PAYLOAD_BYTES, TopicNames
from scoring.kinds import ModelKind

ENV_PREFIX = "STREAMRANK_"
CONFIG_FILE_VAR = f"{ENV_PREFIX}CONFIG_FILE"
SECRETS_DIR_VAR = f"{ENV_PREFIX}SECRETS_DIR"
# Read when present and no file is named: the working directory's, like most tools' own file.
DEFAULT_CONFIG_FILE = Path("streamrank.toml")
CONFIG_DOCS = "docs/configuration.md"


class SettingsError(ValueError):
    """A setting that cannot be used, as one line naming where it came from."""


def _cache_home() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "streamrank"


def config_file(environ: Mapping[str, str] | None = None) -> Path | None:
    """The TOML file settings are read from: the one named, else ./streamrank.toml if present."""
    env = os.environ if environ is None else environ
    named = env.get(CONFIG_FILE_VAR)
    if named:
        path = Path(named)
        if not path.is_file():
            raise SettingsError(f"{CONFIG_FILE_VAR}={named}: no such file")
        return path
    return DEFAULT_CONFIG_FILE if DEFAULT_CONFIG_FILE.is_file() else None


def secrets_dir(environ: Mapping[str, str] | None = None) -> Path | None:
    env = os.environ if environ is None else environ
    named = env.get(SECRETS_DIR_VAR)
    if not named:
        return None
    if not Path(named).is_dir():
        raise SettingsError(f"{SECRETS_DIR_VAR}={named}: no such directory")
    return Path(named)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="ignore", frozen=True)

    bootstrap_servers: str = Field(
        default="127.0.0.1:9092", description="Kafka bootstrap servers, comma separated"
    )
    app_id: str = Field(
        default="streamrank",
        description="consumer group and prefix of the state changelog topics",
    )
    topic_prefix: str = Field(default="streamrank.", description="prefix of every topic name")
    partitions: int = Field(
        default=4, ge=1,
        description="partitions of the topics the worker creates; events.search and "
        "events.action must have the same count (state is co-partitioned by user_id)",
    )
    session_timeout_s: float = Field(
        default=10.0, gt=0,
        description="consumer group session timeout: how soon a crashed worker's partitions "
        "move to the others",
    )
    catalog_partitions: int | None = Field(
        default=None, ge=1,
        description="partitions of the catalog topic; default: an existing topic's count, "
        "else `partitions`",
    )
    replication_factor: int = Field(default=1, ge=1, description="replication of created topics")
    state_dir: Path = Field(
        default=Path("var/state"), description="where the worker keeps RocksDB state"
    )
    models_dir: Path = Field(
        default_factory=lambda: _cache_home() / "models",
        description="model registry folder (exported ONNX models); default: "
        "`$XDG_CACHE_HOME/streamrank/models`, else `~/.cache/streamrank/models`",
    )
    scorer: ModelKind = Field(
        default=ModelKind.ZEROSHOT,
        description="which kind of model serves at start (a ModelUpdate may switch it)",
    )
    model_version: str | None = Field(
        default=None, description="registry version to serve; default: the newest of `scorer`"
    )
    model_variant: Literal["fp32", "int8", "fp16"] | None = Field(
        default=None,
        description="force a variant; default: int8 on CPU, fp16 on GPU if shipped and it "
        "passes its ranking gate on this machine at load, else fp32",
    )
    cascade_k: int | None = Field(
        default=None, ge=0, description="cascade: candidates re-scored by the cross-encoder"
    )
    batch_max_pairs: int = Field(
        default=256, ge=1, description="micro-batcher: candidate pairs merged into one run"
    )
    batch_max_wait_ms: float = Field(
        default=5.0, ge=0, description="micro-batcher: longest wait for more searches"
    )
    batch_queue: int = Field(
        default=1024, ge=1, description="micro-batcher: searches waiting; beyond it, degraded"
    )
    score_timeout_ms: float = Field(
        default=1000.0, gt=0,
        description="a search not scored within this is answered degraded (original order)",
    )
    search_concurrency: int = Field(
        default=32, ge=1, description="searches in flight per worker (what the batcher merges)"
    )
    search_deadline_ms: float | None = Field(
        default=None, gt=0,
        description="a search is answered within this of the worker reading it: ranked when "
        "scored in time, else in the site's order with `degraded: true` and the reason "
        "(`timeout`; `queue_full` at once when the scorer cannot reach it in time); default: "
        "`score_timeout_ms`",
    )
    search_max_age_ms: float = Field(
        default=10_000.0, ge=0,
        description="a search that waited in Kafka longer than this (its record's timestamp to "
        "the worker's read) is answered at once, unscored, degraded `stale`: a worker that fell "
        "behind catches up in seconds. So a search is answered within this + the deadline of "
        "being produced. 0: no age limit",
    )
    rank_deadline_ms: float = Field(
        default=250.0, gt=0,
        description="`POST /rank`: answer within this (a request may ask for less with "
        "`?deadline_ms=`); past it the site's order, degraded `timeout`",
    )
    rank_remembered: int = Field(
        default=5000, ge=0,
        description="`POST /rank`: recent results kept by request_id, so that a repeated "
        "request_id is answered from its first result (never ranked twice)",
    )
    warm_slice_ms: float = Field(
        default=20.0, gt=0,
        description="catalog warm-up runs in the scorer's thread only while no search waits, "
        "in slices of about this long: the most a search waits behind it",
    )
    device: Literal["auto", "cpu", "cuda"] = Field(
        default="auto", description="ONNX Runtime device: auto = CUDA when usable, else CPU"
    )
    sequence_length: int = Field(
        default=20, ge=1, description="actions kept per user (newest first)"
    )
    history_length: int = Field(
        default=10, ge=0, description="most recent actions given to the scorer as history"
    )
    interactions_retained: int = Field(
        default=1000, ge=1,
        description="items kept per user in the retained interaction set the behaviour "
        "features read (seen before, strongest action, when); beyond it the least recently "
        "touched item is dropped",
    )
    attribution_window_s: float = Field(
        default=1800.0, gt=0,
        description="actions count towards a ranking for this long after it was published; "
        "then its samples are emitted",
    )
    impression_ttl_s: float = Field(
        default=7200.0, gt=0,
        description="a ranking's request id is remembered this long (at least the window): a "
        "search repeating it is not kept again, a late action on it is told apart",
    )
    max_impressions_per_user: int = Field(
        default=50, ge=1,
        description="open impressions per user; beyond it the oldest closes early",
    )
    attribution_tick_s: float = Field(
        default=1.0, gt=0, description="how often due attribution windows are closed"
    )
    max_payload_bytes: int = Field(
        default=MAX_PAYLOAD_BYTES, ge=1024, description="larger messages go to the deadletter"
    )
    max_clock_skew_s: float = Field(
        default=3600.0, gt=0,
        description="searches and actions whose `ts` is further than this ahead of the "
        "worker's clock go to the deadletter (reason `invalid`)",
    )
    min_event_ts_ms: int = Field(
        default=0, ge=0,
        description="searches and actions with an older `ts` go to the deadletter, e.g. "
        "946684800000 (2000-01-01) refuses seconds sent as milliseconds; 0 accepts any",
    )
    deadletter_max_bytes: int = Field(
        default=2 * 1024 * 1024, ge=64 * 1024,
        description="max.message.bytes of the deadletter topic when the worker creates it (an "
        "existing topic's own limit is read at start and wins); a bad record larger than it is "
        "kept as a prefix, with its size and sha256 in headers",
    )
    producer_max_request_size: int = Field(
        default=4 * 1024 * 1024, ge=64 * 1024,
        description="largest request the worker's producer sends (Faust's default is "
        "1,000,000 bytes); a deadletter record is cut to fit under it too",
    )
    group_instance_id: str | None = Field(
        default=None,
        description="static group membership (KIP-345): a stable id per worker (e.g. the pod "
        "name). A restarted worker with the same id gets its partitions back without a "
        "rebalance; unset: dynamic membership",
    )
    readiness_probe_s: float = Field(
        default=1.0, gt=0,
        description="how often the worker checks that the cluster answers (/ready/ is 503 "
        "within about twice this, plus the probe's timeout, after the cluster goes away)",
    )
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = Field(
        default="PLAINTEXT",
        description="how every command that uses your cluster connects to Kafka (worker, "
        "`topics`, `tail`, `train`, `simulate`, `model rollback`; `demo` and `bench` start their "
        "own plaintext broker)",
    )
    sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] = Field(
        default="PLAIN", description="SASL mechanism (SASL_* protocols)"
    )
    sasl_username: str | None = Field(default=None, description="SASL user name")
    sasl_password: SecretStr | None = Field(
        default=None, description="SASL password (masked in logs)"
    )
    ssl_cafile: Path | None = Field(
        default=None, description="CA bundle that signed the brokers' certificates (SSL, SASL_SSL)"
    )
    ssl_certfile: Path | None = Field(
        default=None, description="client certificate, for brokers that require mutual TLS"
    )
    ssl_keyfile: Path | None = Field(default=None, description="the client certificate's key")
    ssl_key_password: SecretStr | None = Field(
        default=None, description="password of the client key, if encrypted (masked in logs)"
    )
    web_host: str = Field(default="127.0.0.1", description="worker HTTP interface")
    web_port: int = Field(default=6066, ge=0, le=65535, description="worker HTTP port")
    log_level: Literal["debug", "info", "warning", "error"] = Field(
        default="info", description="least severe log messages shown, for every command"
    )

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Constructor arguments, then env, then the secrets directory, then the TOML file
        (no .env file: one place fewer to look)."""
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        secrets = secrets_dir()
        if secrets is not None:
            sources.append(SecretsSettingsSource(settings_cls, secrets_dir=secrets,
                                                 env_prefix=ENV_PREFIX))
        toml = config_file()
        if toml is not None:
            sources.append(_toml_source(settings_cls, toml))
        return tuple(sources)

    @model_validator(mode="after")
    def _ttl_covers_window(self) -> Settings:
        if self.impression_ttl_s < self.attribution_window_s:
            raise ValueError(
                f"impression_ttl_s must be at least attribution_window_s "
                f"({ENV_PREFIX}IMPRESSION_TTL_S {self.impression_ttl_s:g} < "
                f"{ENV_PREFIX}ATTRIBUTION_WINDOW_S {self.attribution_window_s:g})"
            )
        return self

    @model_validator(mode="after")
    def _sasl_has_credentials(self) -> Settings:
        if self.security_protocol.startswith("SASL") and not (
            self.sasl_username and self.sasl_password
        ):
            raise ValueError(
                f"{self.security_protocol} needs sasl_username and sasl_password "
                f"({ENV_PREFIX}SASL_USERNAME, {ENV_PREFIX}SASL_PASSWORD)"
            )
        return self

    def masked(self) -> dict[str, object]:
        """The settings as logged: secrets replaced by asterisks, paths and kinds as text."""
        out: dict[str, object] = {}
        for name, value in self.model_dump().items():
            if isinstance(value, SecretStr):
                out[name] = "**********"
            elif isinstance(value, Path | ModelKind):
                out[name] = str(value)
            else:
                out[name] = value
        return out

    @property
    def topics(self) -> TopicNames:
        return TopicNames(self.topic_prefix)

    @property
    def ticks_topic(self) -> str:
        """The worker's internal topic of attribution ticks (one consumer group's, like its
        changelogs, hence named after the app id)."""
        return f"{self.app_id}-attribution-ticks"


def _toml_source(settings_cls: type[BaseSettings], path: Path) -> TomlConfigSettingsSource:
    try:
        source = TomlConfigSettingsSource(settings_cls, toml_file=path)
    except tomllib.TOMLDecodeError as exc:
        raise SettingsError(f"{path}: not valid TOML ({exc})") from None
    unknown = sorted(set(source.toml_data) - set(settings_cls.model_fields))
    if unknown:
        # extra="ignore" suits the environment (other STREAMRANK_ variables), not a file
        # written for streamrank: a misspelt key would otherwise be silently unused.
        raise SettingsError(f"{path}: unknown setting {', '.join(map(repr, unknown))} "
                            f"(the settings are listed in {CONFIG_DOCS})")
    return source


def _where(field: str, value: object, environ: Mapping[str, str]) -> str:
    """Where a setting's bad value came from, as a user would look for it (secret values are
    never repeated)."""
    var = f"{ENV_PREFIX}{field.upper()}"
    annotation = Settings.model_fields[field].annotation if field in Settings.model_fields else None
    shown = "" if annotation in (SecretStr, SecretStr | None) else repr(value)
    if any(name.upper() == var for name in environ):
        return f"{var}={shown}" if shown else var
    secrets = secrets_dir(environ)
    if secrets is not None and SecretsSettingsSource.find_case_path(secrets, var, False):
        return f"{var} (the file in {secrets})"
    toml = config_file(environ)
    if toml is not None:
        return f"{toml}: {field} = {shown}" if shown else f"{toml}: {field}"
    return var


def load_settings() -> Settings:
    """The settings, or SettingsError: one line naming each bad value's variable (or file and
    key) and what is wrong with it."""
    try:
        return Settings()
    except ValidationError as exc:
        problems = []
        for error in exc.errors(include_url=False):
            message = str(error["msg"]).removeprefix("Value error, ")
            if error["loc"]:
                where = _where(str(error["loc"][0]), error.get("input"), os.environ)
                message = f"{where}: {message}"
            problems.append(message)
        raise SettingsError("; ".join(problems)) from None
