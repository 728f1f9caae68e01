"""The program loader: the layer class from source, with contract errors that say what is wrong."""
import dataclasses
import inspect
import sys

import pytest
import torch

from lab.program import ContractError, code_hash, load_layer_class, load_program_module
from tests.engineer.programs import source

GOOD = '''
import torch, torch.nn as nn
from dataclasses import dataclass
from fla.modules import ShortConvolution

@dataclass
class Config:
    width: int = 4

class DeltaNet(nn.Module):
    def __init__(self, hidden_size, num_heads, **kwargs):
        super().__init__()
        self.conv = ShortConvolution(hidden_size, kernel_size=Config().width)
        self.proj = nn.Linear(hidden_size, hidden_size)
    def forward(self, hidden_states, attention_mask=None, **kwargs):
        out = self.conv(hidden_states)
        out = out[0] if isinstance(out, tuple) else out
        return self.proj(out), None, None
'''


def test_loads_a_program_that_uses_fla_and_dataclasses():
    cls = load_layer_class(GOOD)
    assert cls.__name__ == "DeltaNet" and cls.__module__ in sys.modules
    assert "def forward" in inspect.getsource(cls)  # inspect finds the source through sys.modules
    layer = cls(hidden_size=16, num_heads=1)
    out, aux, cache = layer(torch.randn(2, 8, 16))
    assert out.shape == (2, 8, 16) and aux is None
    assert dataclasses.is_dataclass(sys.modules[cls.__module__].Config)


def test_each_load_is_a_fresh_module():
    a, b = load_layer_class(GOOD), load_layer_class(GOOD)
    assert a is not b and a.__module__ != b.__module__


def test_loads_the_test_deltanet_program():
    cls = load_layer_class(source("deltanet"))
    out = cls(hidden_size=32, num_heads=1)(torch.randn(1, 8, 32))[0]
    assert out.shape == (1, 8, 32)


@pytest.mark.parametrize("code,message", [
    ("import torch.nn as nn\nclass Other(nn.Module):\n    pass\n", "no class DeltaNet defined"),
    ("", "the program is empty"),
    ("class DeltaNet:\n    def forward(self, hidden_states):\n        pass\n", "must subclass torch.nn.Module"),
    ("import torch.nn as nn\nclass DeltaNet(nn.Module):\n    def __init__(self, d):\n        super().__init__()\n"
     "    def forward(self, hidden_states):\n        return hidden_states, None, None\n",
     "__init__() must accept hidden_size and num_heads"),
    ("import torch.nn as nn\nclass DeltaNet(nn.Module):\n    def __init__(self, hidden_size, num_heads, **kw):\n"
     "        super().__init__()\n    def forward(self, x):\n        return x, None, None\n",
     "forward() must accept hidden_states"),
    ("import torch.nn as nn\nclass DeltaNet(nn.Module):\n    def __init__(self, hidden_size, num_heads, **kw):\n"
     "        super().__init__()\n", "must define forward"),
    ("import torch.nn as nn\nclass DeltaNet(nn.Module):\n    def __init__(self, hidden_size, num_heads, **kw):\n"
     "        super().__init__()\n    def forward(self, hidden_states, attention_mask):\n        return 1\n",
     "give defaults to attention_mask"),
    ("DeltaNet = 3  # class DeltaNet\n", "no class DeltaNet defined at module level"),
])
def test_contract_errors_say_what_is_wrong(code, message):
    with pytest.raises(ContractError, match=message.replace("(", r"\(").replace(")", r"\)")):
        load_layer_class(code)


def test_a_syntax_error_is_raised_as_such_with_the_line():
    with pytest.raises(SyntaxError) as e:
        load_layer_class("class DeltaNet(nn.Module:\n    pass\n")
    assert e.value.lineno == 1


def test_a_failed_exec_leaves_no_module_behind():
    before = set(sys.modules)
    with pytest.raises(ZeroDivisionError):
        load_program_module("x = 1 / 0\n")
    assert set(sys.modules) == before


def test_code_hash_ignores_line_endings_and_trailing_blanks():
    a = "x = 1\ny = 2\n"
    assert code_hash(a) == code_hash("x = 1   \r\n\r\ny = 2") != code_hash("x = 1\ny = 3\n")
    assert len(code_hash(a)) == 64
