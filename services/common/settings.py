"""Settings from environment variables, all prefixed `ARCHLAB_` (e.g. ARCHLAB_KAFKA_BOOTSTRAP).

One flat pydantic-settings class, grouped by area. `get_settings()` reads the environment once
per process; tests build `Settings(...)` directly.
"""
from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from lab.machine_cache import machine_cache_dir


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="ARCHLAB_", extra="ignore")

    # --- where state lives
    data_dir: Path = Path(".archlab")
    # what this machine measured or trained once for every data dir (lab/machine_cache.py); unset: the user's cache
    cache_dir: Path | None = None

    # --- event bus
    kafka_bootstrap: str | None = None   # unset: the embedded broker of `archlab up`
    partitions: int = Field(12, ge=1)
    replication_factor: int = 1
    handler_retries: int = Field(3, ge=0)  # attempts of a raising handler before the DLQ
    # How long the broker (or the embedded broker's gateway) may hold an empty Fetch. New data ends
    # the wait at once, so this sets only what an idle consumer costs, not latency.
    fetch_max_wait_ms: int = Field(1000, ge=10, le=30000)
    # A stable, unique name of this service replica (Kafka static group membership): a restarted
    # process with the same name takes its old place at once, instead of the group waiting for the
    # dead member to time out (the embedded broker never times it out). Unset: dynamic membership.
    # The embedded stack sets it to the process name; under compose, one per replica or none.
    instance_id: str | None = None

    # --- storage (archive)
    storage: str = "sqlite"              # sqlite | cassandra
    cassandra_hosts: str | None = None   # comma-separated; set to run the Cassandra backend
    cassandra_keyspace: str = "archlab"
    cassandra_consistency: str = "LOCAL_QUORUM"

    # --- vectors and embeddings
    milvus_uri: str | None = None        # unset: the embedded milvus-lite server of `archlab up`
    embeddings_base_url: str | None = None  # OpenAI-compatible embeddings endpoint; unset: local MiniLM
    embeddings_model: str = "all-MiniLM-L6-v2"

    # --- LLM (OpenAI-compatible: OpenAI, Azure, vLLM, Ollama). Unset base URL and key: offline mode.
    llm_base_url: str | None = None
    llm_api_key: str | None = None
    # a file holding the key (a docker secret, <data_dir>/secrets/llm_api_key written by the CLI): read by the
    # LLM client instead of llm_api_key, so that the key is in no process's environment (docs/security.md)
    llm_api_key_file: str | None = None
    llm_model: str = "gpt-4.1-mini"      # default for every role
    llm_model_planner: str | None = None
    llm_model_novelty: str | None = None
    llm_model_debugger: str | None = None
    llm_model_analyst: str | None = None
    llm_model_judge: str | None = None
    # several planner models: the planner routes its calls over them with a bandit on fitness gain per dollar
    # (services/researcher/routing.py); JSON in env: ARCHLAB_LLM_MODELS_PLANNER='["gpt-4.1", "gpt-4.1-mini"]'
    llm_models_planner: list[str] = Field(default_factory=list)
    llm_timeout_s: float = 120.0
    llm_max_retries: int = 4

    # --- judge / analyst / cognition
    # seed noise per profile, in metric units: {"cpu-tiny": {"loss": 0.02, "benchmark": 0.01}} (JSON in env)
    judge_seed_noise: dict[str, dict[str, float]] = Field(default_factory=dict)
    cognition_collection: str = "cognitions"
    cognition_min_score: float = 0.25     # cosine similarity below which a cognition is not "relevant"

    # --- web UI (services/ui/main.py; anything but a loopback host needs a token: generated and logged once)
    ui_host: str = "127.0.0.1"
    ui_port: int = 8765                  # 0, or taken: any free port
    ui_token: str | None = None

    # --- engineer
    engineer_id: str | None = None       # unset: hostname-pid
    device: str = "auto"                 # auto | cpu | cuda
    engineer_lease_s: float = 60.0       # no heartbeat for this long: another engineer may take the run over
    engineer_heartbeat_s: float = 5.0    # TrainingProgress period (renews the lease)
    engineer_threads: int = 1            # CPU threads of a training child
    engineer_stop_noises: float = 4.0    # early stopping: worse than the baseline at a rung by > this many seed noises
    # where the rungs are, as fractions of the steps (JSON list); every engineer of a campaign must use the same
    engineer_rung_fracs: list[float] = [0.4, 0.5, 0.75]
    # a baseline trained once in this data dir is reused, re-scored on each campaign's held-out data (baseline_cache)
    engineer_reuse_baseline: bool = True
    debugger_max_revisions: int = 3      # when the campaign's ParentSampled.max_revisions is not known

    @property
    def llm_configured(self) -> bool:
        return bool(self.llm_base_url or self.llm_api_key or self.llm_api_key_file)

    def model_for(self, role: str) -> str:
        return getattr(self, f"llm_model_{role}", None) or self.llm_model

    @property
    def embedded_broker(self) -> bool:
        return not self.kafka_bootstrap

    @property
    def machine_cache(self) -> Path:
        return self.cache_dir or machine_cache_dir()


def load_settings(data_dir: Path | None = None, **overrides) -> Settings:
    """Settings from the environment, with command-line overrides (None means: keep the env value)."""
    settings = Settings()
    if data_dir is not None:
        overrides["data_dir"] = data_dir
    return settings.model_copy(update=overrides) if overrides else settings


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
