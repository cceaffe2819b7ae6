"""The engine's configuration (`netspectra engine --config FILE`, schemas/settings.py): what it
reads, where it writes, its windows, detection, cluster and recovery. Light to import: the
command line checks and prints it before Bytewax starts."""
from __future__ import annotations

from typing import Optional

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from flows.defaults import HEAP_TRIM_S, IDLE_S, LATENESS_S, LIVE_GRACE_S, MAX_FLOWS, SHARDS, TOP_N, WINDOW_S
from schemas.clickhouse import parse_retention, retention_setting
from schemas.topics import DEAD_LETTER_TOPIC, LOCAL_KAFKA, PACKETS_TOPIC
from sinks.redis_state import MAX_BACKLOG


class EngineConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    # input
    kafka: str = LOCAL_KAFKA                         # bootstrap servers
    topic: str = PACKETS_TOPIC
    dead_letter_topic: Optional[str] = DEAD_LETTER_TOPIC
    stop_at_end: bool = False                        # stop at the end of the topic instead of tailing it
    # outputs (any of them)
    store: Optional[str] = None                      # chDB directory
    clickhouse: Optional[str] = None                 # ClickHouse server host:port, native protocol
    redis: Optional[str] = None                      # live state: host:port or redis:// URL
    redis_backlog: int = Field(default=MAX_BACKLOG, ge=1)    # held while Redis is away; beyond, the oldest dropped
    rollups: bool = False                            # keep the store's minute/hour/day roll-ups (sinks/rollups.py)
    retention: dict[str, float] = Field(default_factory=dict)    # table -> days kept (schemas/clickhouse.py defaults)
    # windows
    window: float = Field(default=WINDOW_S, ge=0)
    lateness: float = Field(default=LATENESS_S, ge=0)
    idle: float = Field(default=IDLE_S, gt=0)
    grace: float = Field(default=LIVE_GRACE_S, ge=0)
    max_flows: int = Field(default=MAX_FLOWS, ge=0)
    shards: int = Field(default=SHARDS, ge=1)
    top_n: int = Field(default=TOP_N, ge=1)
    # detection and alerts
    detect: bool = True
    rules: Optional[str] = None                      # rules file; None: the built-in rules
    alert_webhook: Optional[str] = None
    alertmanager: Optional[str] = None
    alert_state: Optional[str] = None                # notifiers' delivered-logs; default <recovery_dir>/alerts
    # cluster: without process_id/addresses, Bytewax reads BYTEWAX_POD_NAME, BYTEWAX_STATEFULSET_NAME
    # and BYTEWAX_HOSTFILE_PATH (a StatefulSet, k8s/)
    workers: int = Field(default=1, ge=1)            # worker threads per process
    process_id: Optional[int] = Field(default=None, ge=0)
    addresses: Optional[str] = None                  # host:port of every process, ';'-separated
    # recovery
    recovery_dir: Optional[str] = None
    snapshot_interval: int = Field(default=5, ge=1)
    backup_interval: int = Field(default=0, ge=0)
    recovery_partitions: int = Field(default=4, ge=1)
    recovery_min_free_mb: float = Field(default=64, ge=0)
    # memory: seconds between two malloc_trim calls that return freed heap pages (flows/heap.py); 0: never
    heap_trim: float = Field(default=HEAP_TRIM_S, ge=0)
    # Prometheus metrics: port 0 = none; process i of a cluster on one host listens on port + i
    metrics_host: str = "127.0.0.1"
    metrics_port: int = Field(default=0, ge=0, le=65535)

    @field_validator("retention", mode="before")
    @classmethod
    def _retention_text(cls, v):
        return parse_retention(v) if isinstance(v, str) else v     # TABLE=DAYS,... (the environment's form)

    @field_validator("retention")
    @classmethod
    def _retention(cls, v: dict[str, float]) -> dict[str, float]:
        retention_setting(v)        # a table that does not exist, or no time at all: one line
        return v

    @model_validator(mode="after")
    def _cluster(self):
        if (self.process_id is None) != (self.addresses is None):
            raise ValueError("process_id and addresses go together (or neither: Bytewax's environment)")
        if self.addresses is not None and self.process_id >= len(self.addresses.split(";")):
            raise ValueError(f"process_id {self.process_id} is not one of the {len(self.addresses.split(';'))} addresses")
        return self

    @property
    def source_name(self) -> str:
        return self.topic
