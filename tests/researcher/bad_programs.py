"""Layer programs that must fail one sanity check each (as source strings)."""

_HEAD = '''
import torch
import torch.nn as nn
import torch.nn.functional as F


class DeltaNet(nn.Module):
    def __init__(self, hidden_size=64, num_heads=1, use_short_conv=True, conv_size=4, layer_idx=None, **kwargs):
        super().__init__()
        self.qkv = nn.Linear(hidden_size, 3 * hidden_size, bias=False)
        self.o = nn.Linear(hidden_size, hidden_size, bias=False)

    def forward(self, hidden_states, attention_mask=None, past_key_values=None, use_cache=False, **kwargs):
        q, k, v = self.qkv(hidden_states).chunk(3, -1)
'''

# every position reads a summary of the WHOLE sequence: linear cost, but it sees the future
FUTURE_LEAK = _HEAD + '''
        q, k = F.elu(q) + 1, F.elu(k) + 1
        kv = k.transpose(1, 2) @ v / k.shape[1]
        return self.o(q @ kv), None, past_key_values
'''

# causal softmax attention: correct, but it builds a T x T matrix
QUADRATIC = _HEAD + '''
        T = q.shape[1]
        att = (q @ k.transpose(1, 2)) / q.shape[-1] ** 0.5
        att = att.masked_fill(torch.ones(T, T, dtype=torch.bool).triu(1), float("-inf")).softmax(-1)
        return self.o(att @ v), None, past_key_values
'''

# assumes the length is a multiple of 64 (no padding): fails at length 67
SHAPE_DEPENDENT = _HEAD + '''
        B, T, D = q.shape
        k = k.reshape(B, T // 64, 64, D).cumsum(2).reshape(B, T, D)
        return self.o(F.silu(q) * k + v), None, past_key_values
'''

# centres each sample on the batch mean: every sample's output depends on the others
BATCH_MIXING = _HEAD + '''
        v = v - v.mean(0, keepdim=True)
        return self.o(F.silu(q) * v.cumsum(1) / 64), None, past_key_values
'''

WRONG_OUTPUT_SHAPE = _HEAD + '''
        return self.o(v)[:, :-1], None, past_key_values
'''

IMPORTS_OS = "import os\n" + QUADRATIC
IMPORTS_SOCKET = "import torch\nfrom socket import socket\n" + QUADRATIC
CALLS_EVAL = QUADRATIC.replace("T = q.shape[1]", "T = eval('q.shape[1]')")
CALLS_DUNDER_IMPORT = QUADRATIC.replace("T = q.shape[1]", "T = __import__('subprocess') and q.shape[1]")
SYNTAX_ERROR = _HEAD + "\n        return self.o(v, None, past_key_values\n"
NO_CLASS = "import torch\n\ndef layer(x):\n    return x\n"
BUILD_ERROR = _HEAD.replace("super().__init__()", "super().__init__()\n        self.bad = nn.Linear(hidden_size, missing_name)") + \
    "\n        return self.o(v), None, past_key_values\n"

# passes the static vetting, then writes a file outside its scratch dir at run time
WRITES_FILE = QUADRATIC.replace("T = q.shape[1]", "torch.serialization._open_file('/tmp/archlab-stolen.pt', 'wb'); T = q.shape[1]")
