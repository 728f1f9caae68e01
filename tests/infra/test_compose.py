"""infra/docker-compose.yml and infra/Dockerfile: valid for docker-compose, and consistent with the code
(env vars are Settings fields, every role has a service with a healthcheck, engineers get a GPU and scale)."""
from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from schemas.topics import all_topics
from services.common.settings import Settings
from tests.support.cli_env import clean_env

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "infra" / "docker-compose.yml"
DOCKERFILE = ROOT / "infra" / "Dockerfile"
ROLES = {
    "researcher": "services.researcher.main",
    "engineer": "services.engineer.main",
    "debugger": "services.debugger.main",
    "analyst": "services.analyst.main",
    "judge": "services.judge.main",
    "cognition": "services.cognition.main",
    "archive": "services.archive.main",
}
SETTINGS_ENV = {"ARCHLAB_" + name.upper() for name in Settings.model_fields}


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load(COMPOSE.read_text())


def env_of(service: dict) -> dict:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) if "=" in item else (item, None) for item in env)
    return env


def test_docker_compose_config_validates(tmp_path):
    binary = shutil.which("docker-compose")
    if binary is None:
        pytest.skip("docker-compose is not installed (apt-get install -y docker-compose)")
    # an empty env file: the check must not depend on the caller's ARCHLAB_* variables
    env = clean_env("ARCHLAB_")
    out = subprocess.run([binary, "-f", str(COMPOSE), "config"], capture_output=True, text=True, env=env,
                         timeout=120, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    resolved = yaml.safe_load(out.stdout)
    assert set(ROLES) <= set(resolved["services"])
    # anchors and merges resolved as intended
    engineer = resolved["services"]["engineer"]
    assert env_of(engineer)["ARCHLAB_DEVICE"] == "cuda"
    assert env_of(engineer)["ARCHLAB_KAFKA_BOOTSTRAP"] == "kafka:9092"
    assert resolved["services"]["archive"]["depends_on"]["cassandra-init"]["condition"] == \
        "service_completed_successfully"


def test_every_archlab_env_var_is_a_settings_field(compose):
    used = set()
    for name, service in compose["services"].items():
        used |= {k for k in env_of(service) if k.startswith("ARCHLAB_")}
    text = COMPOSE.read_text() + DOCKERFILE.read_text()
    used |= set(re.findall(r"\bARCHLAB_[A-Z0-9_]+", text)) - {"ARCHLAB_IMAGE_TAG"}  # image tag: compose-only
    assert used, "no ARCHLAB_ variable found"
    unknown = used - SETTINGS_ENV
    assert not unknown, f"not fields of Settings: {sorted(unknown)}"
    # the essentials of a real deployment are set for every role
    for role in ROLES:
        env = env_of(compose["services"][role])
        assert env["ARCHLAB_KAFKA_BOOTSTRAP"] == "kafka:9092"
        assert env["ARCHLAB_STORAGE"] == "cassandra" and env["ARCHLAB_CASSANDRA_HOSTS"] == "cassandra"
        assert env["ARCHLAB_MILVUS_URI"].startswith("http://milvus:")
        assert env["ARCHLAB_DATA_DIR"] == "/data"
        assert env["ARCHLAB_CACHE_DIR"].startswith("/data/")   # the machine cache persists in the volume
        if "ARCHLAB_LLM_API_KEY" in env:  # only the LLM services have it (see the least-privilege test below)
            assert env["ARCHLAB_LLM_API_KEY"] is None  # from the host, never written
        settings = Settings(**{k[len("ARCHLAB_"):].lower(): v for k, v in env.items() if v is not None})
        assert settings.storage == "cassandra" and not settings.embedded_broker


def test_roles_commands_healthchecks_and_dependencies(compose):
    services = compose["services"]
    for role, module in ROLES.items():
        s = services[role]
        assert s["command"][:3] == ["python", "-m", module], role
        assert "test" in s["healthcheck"], role
        assert s["depends_on"]["kafka"]["condition"] == "service_healthy"
        assert s["depends_on"]["topics-init"]["condition"] == "service_completed_successfully"
        assert "archlab-data:/data" in s["volumes"]
    assert services["debugger"]["command"] == ["python", "-m", "services.debugger.main"]
    assert services["topics-init"]["command"] == ["archlab", "topics", "create"]
    assert "/infra/cassandra/schema.cql" in services["cassandra-init"]["command"]
    assert any(v.startswith("./cassandra:/infra/cassandra") for v in services["cassandra-init"]["volumes"])
    for infra in ("kafka", "cassandra", "milvus", "etcd", "minio"):
        assert "healthcheck" in services[infra], infra
    assert services["kafka"]["image"].startswith("apache/kafka:")
    assert services["kafka"]["environment"]["KAFKA_PROCESS_ROLES"] == "broker,controller"  # KRaft, no ZooKeeper
    assert "zookeeper" not in services


def test_engineer_requests_a_gpu_and_scales(compose):
    engineer = compose["services"]["engineer"]
    devices = engineer["deploy"]["resources"]["reservations"]["devices"]
    assert any(d["driver"] == "nvidia" and "gpu" in d["capabilities"] for d in devices)
    for role in ROLES:  # scalable: nothing that two replicas would fight over
        s = compose["services"][role]
        assert "container_name" not in s and "ports" not in s, role


def test_topic_names_come_from_the_registry(compose):
    known = set(all_topics())
    named = set(re.findall(r"archlab\.[a-z][a-z0-9.-]*[a-z0-9]", COMPOSE.read_text()))
    assert named <= known, sorted(named - known)


def test_dockerfile_builds_the_services_image():
    text = DOCKERFILE.read_text()
    assert re.search(r"^FROM python:3\.11-slim", text, re.M)
    assert "ARG TORCH_INDEX_URL" in text and "--index-url" in text
    assert "EXTRAS=gpu" in text and '".[${EXTRAS}]"' in text
    assert text.index("TORCH_INDEX_URL}") < text.index('".[${EXTRAS}]"')  # torch before the project
    for path in ("schemas", "services", "pyproject.toml"):
        assert path in text


def _healthcheck_code(compose) -> str:
    test = compose["services"]["judge"]["healthcheck"]["test"]
    assert test[:3] == ["CMD", "python", "-c"]
    return test[3]


def test_service_healthcheck_runs(compose, tmp_path):
    """The healthcheck passes with a `python -m services.x` process and a listening broker port,
    and fails when the port is closed."""
    code = _healthcheck_code(compose)
    pkg = tmp_path / "services"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "sleeper.py").write_text("import time\ntime.sleep(60)\n")
    sleeper = subprocess.Popen([sys.executable, "-m", "services.sleeper"], cwd=tmp_path)
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    port = listener.getsockname()[1]
    try:
        env = dict(os.environ, ARCHLAB_KAFKA_BOOTSTRAP=f"127.0.0.1:{port}")
        ok = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=30)
        assert ok.returncode == 0, ok.stderr
        listener.close()
        down = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=30)
        assert down.returncode != 0 and "ConnectionRefused" in down.stderr
    finally:
        listener.close()
        sleeper.kill()
        sleeper.wait()


def test_only_the_llm_services_get_the_llm_key_and_the_engineer_may_sandbox():
    """Least privilege (issue 13): the engineer runs generated code and never holds the key; bubblewrap
    needs the engineer's seccomp/AppArmor/systempaths unconfined; the image installs bubblewrap."""
    from lab.confine import LLM_SERVICES

    services = yaml.safe_load(COMPOSE.read_text())["services"]
    with_key = {name for name, svc in services.items() if "ARCHLAB_LLM_API_KEY" in (svc.get("environment") or {})}
    assert with_key == set(LLM_SERVICES)
    opts = services["engineer"].get("security_opt") or []
    assert {"seccomp=unconfined", "apparmor=unconfined", "systempaths=unconfined"} <= set(opts)
    assert "bubblewrap" in DOCKERFILE.read_text()


def test_the_engineers_data_cache_is_a_named_volume_prepared_by_an_init_job(compose):
    services = compose["services"]
    assert "archlab-datasets" in compose["volumes"]
    init = services["data-init"]
    assert init["command"][:3] == ["archlab", "data", "prepare"] and init["restart"].startswith("on-failure")
    assert "archlab-datasets:/data/datasets" in init["volumes"] and env_of(init)["ARCHLAB_DATA_DIR"] == "/data"
    engineer = services["engineer"]
    assert "archlab-datasets:/data/datasets:ro" in engineer["volumes"] and "archlab-data:/data" in engineer["volumes"]
    assert engineer["depends_on"]["data-init"]["condition"] == "service_completed_successfully"
    # the cache lies where the code looks for it: <ARCHLAB_DATA_DIR>/datasets
    from lab.training.datastage import cache_root
    assert str(cache_root("/data")) == "/data/datasets"
    # the init job's profile is one that needs staging, and the CLI knows the command
    from lab.training.datastage import needs_staging
    from lab.training.profiles import get_profile
    default = re.fullmatch(r"\$\{DATA_PROFILE:-([\w-]+)\}", init["command"][3]).group(1)
    assert needs_staging(get_profile(default))


def test_the_secrets_override_gives_the_key_file_to_the_llm_services_only(tmp_path):
    """infra/docker-compose.secrets.yml: the key as a docker secret (a file at /run/secrets/llm_api_key named by
    ARCHLAB_LLM_API_KEY_FILE) in the LLM services, and in no other service (issue 13, point 3)."""
    from lab.confine import LLM_SERVICES

    override = yaml.safe_load((ROOT / "infra" / "docker-compose.secrets.yml").read_text())
    assert set(override["services"]) == set(LLM_SERVICES)
    for svc in override["services"].values():
        assert svc["secrets"] == ["llm_api_key"]
        assert env_of(svc) == {"ARCHLAB_LLM_API_KEY_FILE": "/run/secrets/llm_api_key"}
    binary = shutil.which("docker-compose")
    if binary is None:
        pytest.skip("docker-compose is not installed (apt-get install -y docker-compose)")
    key = tmp_path / "llm_api_key"
    key.write_text("sk-never-in-the-config")
    env = clean_env("ARCHLAB_")
    out = subprocess.run([binary, "-f", str(COMPOSE), "-f", str(ROOT / "infra" / "docker-compose.secrets.yml"),
                          "config"], capture_output=True, text=True, env={**env, "ARCHLAB_LLM_API_KEY_FILE": str(key)},
                         timeout=120, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert "sk-never-in-the-config" not in out.stdout
    resolved = yaml.safe_load(out.stdout)
    with_file = {n for n, s in resolved["services"].items() if "ARCHLAB_LLM_API_KEY_FILE" in env_of(s)}
    with_secret = {n for n, s in resolved["services"].items() if s.get("secrets")}
    assert with_file == with_secret == set(LLM_SERVICES)
    assert env_of(resolved["services"]["researcher"])["ARCHLAB_KAFKA_BOOTSTRAP"] == "kafka:9092"  # merged, not replaced
    missing = subprocess.run([binary, "-f", str(COMPOSE), "-f", str(ROOT / "infra" / "docker-compose.secrets.yml"),
                              "config"], capture_output=True, text=True, env=env, timeout=120, cwd=tmp_path)
    assert missing.returncode != 0 and "ARCHLAB_LLM_API_KEY_FILE" in missing.stderr


def test_the_ui_is_a_container_with_its_own_read_model(compose):
    """Issue 26: the UI container reads a SQLite read model that a replica of the archive's projection writes
    (its own group, `--replica`: it decides nothing), published on the host's loopback only, without the LLM key."""
    services = compose["services"]
    replica, ui = services["ui-readmodel"], services["ui"]
    assert replica["command"] == ["python", "-m", "services.archive.main", "--replica"]
    assert ui["command"] == ["python", "-m", "services.ui.main"]
    assert env_of(replica)["ARCHLAB_STORAGE"] == "sqlite"
    assert env_of(replica)["ARCHLAB_DATA_DIR"] == env_of(ui)["ARCHLAB_DATA_DIR"] == "/ui-data"
    assert "ui-data:/ui-data" in replica["volumes"] and "ui-data:/ui-data" in ui["volumes"]
    assert "ui-data" in compose["volumes"]
    assert env_of(ui)["ARCHLAB_UI_TOKEN"] is None                       # from the host, never written
    assert all(p.startswith("127.0.0.1:") for p in ui["ports"])
    assert "ARCHLAB_LLM_API_KEY" not in env_of(ui) and "ARCHLAB_LLM_API_KEY" not in env_of(replica)
    settings = Settings(**{k[len("ARCHLAB_"):].lower(): v for k, v in env_of(ui).items() if v is not None})
    assert settings.ui_host == "0.0.0.0" and settings.ui_port == 8765
