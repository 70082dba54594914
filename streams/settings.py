"""Worker configuration: environment variables prefixed STREAMRANK_, read once at the entry point.

Each field is documented because docs/configuration.md and the README table come from here.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from contracts import MAX_PAYLOAD_BYTES, TopicNames


def _cache_home() -> Path:
    import os

    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "streamrank"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="STREAMRANK_", extra="ignore", frozen=True)

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
        default=30.0, gt=0,
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
        description="model registry folder (exported ONNX models)",
    )
    scorer: Literal["zeroshot", "embed", "cross", "cascade"] = Field(
        default="zeroshot",
        description="which kind of model serves at start (a ModelUpdate may switch it)",
    )
    model_version: str | None = Field(
        default=None, description="registry version to serve; default: the newest of `scorer`"
    )
    model_variant: Literal["fp32", "int8", "fp16"] | None = Field(
        default=None, description="force a variant; default: int8 on CPU, fp16 on GPU if shipped"
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
    device: Literal["auto", "cpu", "cuda"] = Field(
        default="auto", description="ONNX Runtime device: auto = CUDA when usable, else CPU"
    )
    sequence_length: int = Field(
        default=20, ge=1, description="actions kept per user (newest first)"
    )
    history_length: int = Field(
        default=10, ge=0, description="most recent actions given to the scorer as history"
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
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = Field(
        default="PLAINTEXT", description="how the worker, `topics` and `tail` connect to Kafka"
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
    log_level: Literal["debug", "info", "warning", "error"] = Field(default="info")

    @model_validator(mode="after")
    def _ttl_covers_window(self) -> Settings:
        if self.impression_ttl_s < self.attribution_window_s:
            raise ValueError("impression_ttl_s must be at least attribution_window_s")
        return self

    @model_validator(mode="after")
    def _sasl_has_credentials(self) -> Settings:
        if self.security_protocol.startswith("SASL") and not (
            self.sasl_username and self.sasl_password
        ):
            raise ValueError(f"{self.security_protocol} needs sasl_username and sasl_password")
        return self

    def masked(self) -> dict[str, object]:
        """The settings as logged: secrets replaced by asterisks, paths as text."""
        out: dict[str, object] = {}
        for name, value in self.model_dump().items():
            if isinstance(value, SecretStr):
                out[name] = "**********"
            elif isinstance(value, Path):
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
