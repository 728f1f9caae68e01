"""Test-local layer programs (used until/unless lab.zoo provides them)."""
from pathlib import Path

HERE = Path(__file__).resolve().parent


def source(name: str) -> str:
    """Source of a test-local program: 'deltanet', 'linear' or 'softmax'."""
    return (HERE / f"{name}.py").read_text()


def layer_class(name: str):
    namespace: dict = {"__name__": f"test_program_{name}"}
    exec(compile(source(name), f"<program {name}>", "exec"), namespace)
    return namespace["DeltaNet"]
