"""The layering the docs promise (docs/architecture.md), checked on every import statement, lazy ones included.

    schemas        <- the event contract: imports nothing of ours
    lab            <- the lab's knowledge: imports schemas only; no Kafka, no services
    services/common <- plumbing shared by services: imports schemas and lab
    services/<x>   <- one service: imports schemas, lab, services/common, and itself
    services/cli   <- the composition root: may import any of them
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
KAFKA_CLIENTS = ("aiokafka", "faststream", "kafka", "confluent_kafka")


def _modules_imported(path: Path) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text(), filename=str(path))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.append((node.lineno, node.module))
            # `from services import engineer` names a package too
            found += [(node.lineno, f"{node.module}.{a.name}") for a in node.names if node.module in ("services", "lab")]
    return found


def _python_files(package: str) -> list[Path]:
    return sorted(p for p in (ROOT / package).rglob("*.py") if "programs" not in p.parts)


def _service_of(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if parts[0] == "services" and len(parts) > 1 else None


SERVICES = sorted(p.name for p in (ROOT / "services").iterdir() if (p / "__init__.py").exists())


@pytest.mark.parametrize("service", [s for s in SERVICES if s not in ("cli", "common")])
def test_a_service_imports_no_other_service(service):
    bad = []
    for path in _python_files(f"services/{service}"):
        for line, module in _modules_imported(path):
            other = _service_of(module)
            if other not in (None, service, "common"):
                bad.append(f"{path.relative_to(ROOT)}:{line} imports {module}")
    assert not bad, "services talk through events; shared knowledge belongs in lab/ or services/common:\n" + "\n".join(bad)


def test_common_imports_no_service():
    bad = [f"{p.relative_to(ROOT)}:{line} imports {m}" for p in _python_files("services/common")
           for line, m in _modules_imported(p) if _service_of(m) not in (None, "common")]
    assert not bad, "\n".join(bad)


def test_the_lab_core_imports_no_service_and_no_kafka():
    bad = [f"{p.relative_to(ROOT)}:{line} imports {m}" for p in _python_files("lab")
           for line, m in _modules_imported(p)
           if m.split(".")[0] == "services" or m.split(".")[0] in KAFKA_CLIENTS]
    assert not bad, "lab/ is the Kafka-free core:\n" + "\n".join(bad)


def test_the_event_contract_imports_nothing_of_ours_but_itself():
    bad = [f"{p.relative_to(ROOT)}:{line} imports {m}" for p in _python_files("schemas")
           for line, m in _modules_imported(p) if m.split(".")[0] in ("services", "lab")]
    assert not bad, "\n".join(bad)


def test_no_import_error_fallbacks_around_our_own_modules():
    """A missing module of ours is a bug to see, not a reason to run a private copy."""
    bad = []
    for package in ("lab", "services", "schemas"):
        for path in _python_files(package):
            for node in ast.walk(ast.parse(path.read_text())):
                if not isinstance(node, ast.Try):
                    continue
                caught = {getattr(h.type, "id", None) for h in node.handlers}
                if not caught & {"ImportError", "ModuleNotFoundError"}:
                    continue
                ours = [n for stmt in node.body for n in ast.walk(stmt)
                        if isinstance(n, ast.ImportFrom) and (n.module or "").split(".")[0] in ("lab", "services", "schemas")]
                if ours:
                    bad.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert not bad, "\n".join(bad)


def test_the_checker_catches_a_cross_service_import(tmp_path):
    """The rule above can fail: a file importing another service is reported."""
    f = tmp_path / "x.py"
    f.write_text("def f():\n    from services.engineer.worker import Worker\n    from services import judge\n")
    assert {_service_of(m) for _, m in _modules_imported(f)} >= {"engineer", "judge"}
