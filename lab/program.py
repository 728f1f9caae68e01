"""Layer programs: source code -> the layer class, under the layer contract.

A program is the source of one Python module defining `class DeltaNet(nn.Module)` with
`__init__(..., hidden_size, num_heads, ..., **kwargs)` and
`forward(hidden_states, attention_mask=None, ...) -> (output, aux_or_None, cache)`.

`load_layer_class` EXECUTES the code: call it only inside a sandbox child
(lab.sandbox), never in a service process.
"""
from __future__ import annotations

import ast
import builtins
import hashlib
import inspect
import itertools
import linecache
import re
import sys
import types

_counter = itertools.count()


class ContractError(ValueError):
    """The program does not honour the layer contract (the message says how)."""


def code_hash(code: str) -> str:
    """The one hash of a program (`ProposalCreated.code_hash`, caches): comments, docstrings, formatting
    and local names removed.

    Two programs that differ only in naming or comments hash alike (a paraphrase is no new idea).
    Falls back to a whitespace-stripped hash when the code does not parse.
    """
    try:
        tree = ast.parse(code)
    except SyntaxError:
        return hashlib.sha256("".join(code.split()).encode()).hexdigest()
    names: dict[str, str] = {}

    def canon(name: str) -> str:
        return names.setdefault(name, f"n{len(names)}")

    for node in ast.walk(tree):  # drop docstrings
        body = getattr(node, "body", None)
        if isinstance(body, list) and body and isinstance(body[0], ast.Expr) \
                and isinstance(body[0].value, ast.Constant) and isinstance(body[0].value.value, str):
            node.body = body[1:] or [ast.Pass()]
    imported = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            imported |= {(a.asname or a.name).split(".")[0] for a in node.names}
    for node in ast.walk(tree):
        if isinstance(node, ast.Name) and node.id not in imported and node.id not in _BUILTINS:
            node.id = canon(node.id)
        elif isinstance(node, ast.arg):
            node.arg = canon(node.arg)
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and not node.name.startswith("__"):
            node.name = canon(node.name)
        elif isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in ("self", names.get("self")):
            node.attr = canon("self." + node.attr)
    return hashlib.sha256(ast.unparse(tree).encode()).hexdigest()


_BUILTINS = set(dir(builtins))


def ensure_fla_importable() -> str:
    """Make `import fla...` work: real fla with CUDA, else the pure-PyTorch stand-in. Returns which."""
    import torch

    if torch.cuda.is_available():
        try:
            import fla.modules  # noqa: F401
            return "fla"
        except Exception:  # noqa: BLE001 - no triton, broken install: fall back to the shim
            for name in [m for m in sys.modules if m == "fla" or m.startswith("fla.")]:
                del sys.modules[name]
    from lab.fla_shim import SHIM_DIR

    if str(SHIM_DIR) not in sys.path:
        sys.path.insert(0, str(SHIM_DIR))
    return "shim"


def load_program_module(code: str, name: str | None = None) -> types.ModuleType:
    """Exec `code` in a fresh module registered in sys.modules (dataclasses, inspect and
    torch.compile look modules up there)."""
    ensure_fla_importable()
    name = name or f"archlab_program_{hashlib.sha256(code.encode()).hexdigest()[:12]}_{next(_counter)}"
    module = types.ModuleType(name)
    module.__file__ = f"<program {name}>"
    # inspect.getsource (used by torch.compile, triton, dataclasses' repr) reads through linecache
    linecache.cache[module.__file__] = (len(code), None, code.splitlines(True), module.__file__)
    sys.modules[name] = module
    try:
        exec(compile(code, module.__file__, "exec"), module.__dict__)
    except BaseException:
        sys.modules.pop(name, None)
        raise
    return module


def load_layer_class(code: str, class_name: str = "DeltaNet") -> type:
    """The program's layer class, after checking the contract's signatures (ContractError if not)."""
    import torch.nn as nn

    if not code or not code.strip():
        raise ContractError("the program is empty")
    if not re.search(rf"\bclass\s+{re.escape(class_name)}\b", code):
        raise ContractError(f"no class {class_name} defined: the layer contract requires "
                            f"`class {class_name}(nn.Module)`")
    module = load_program_module(code)
    cls = getattr(module, class_name, None)
    if not isinstance(cls, type):
        raise ContractError(f"no class {class_name} defined at module level (found {type(cls).__name__})")
    if not issubclass(cls, nn.Module):
        raise ContractError(f"class {class_name} must subclass torch.nn.Module")
    _check_init(cls, class_name)
    _check_forward(cls, class_name)
    return cls


def _check_init(cls: type, class_name: str) -> None:
    params = inspect.signature(cls.__init__).parameters
    has_var_kw = any(p.kind is p.VAR_KEYWORD for p in params.values())
    missing = [n for n in ("hidden_size", "num_heads") if n not in params and not has_var_kw]
    if missing:
        raise ContractError(f"{class_name}.__init__() must accept {' and '.join(missing)} (and **kwargs)")


def _check_forward(cls: type, class_name: str) -> None:
    forward = getattr(cls, "forward", None)
    if forward is None or forward is nn_module_forward():
        raise ContractError(f"{class_name} must define forward(hidden_states, attention_mask=None, **kwargs)")
    params = [p for p in inspect.signature(forward).parameters.values() if p.name != "self"]
    positional = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    if "hidden_states" not in {p.name for p in params} and not any(p.kind is p.VAR_POSITIONAL for p in params):
        if not positional:
            raise ContractError(f"{class_name}.forward() must accept hidden_states")
        raise ContractError(f"{class_name}.forward() must accept hidden_states as its first argument "
                            f"(found {positional[0].name!r})")
    required = [p.name for p in positional[1:] if p.default is p.empty]
    if required:
        raise ContractError(f"{class_name}.forward() may require only hidden_states; give defaults to "
                            f"{', '.join(required)} (e.g. attention_mask=None)")


def nn_module_forward():
    import torch.nn as nn

    return nn.Module.forward
