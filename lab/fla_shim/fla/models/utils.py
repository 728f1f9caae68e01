"""Cache: the per-layer state store that fla layers read and update during generation.

Programs use it as `past_key_values[layer_idx]` (a dict with recurrent_state, attn_state,
conv_state, ffn_state), `len(past_key_values)` and
`past_key_values.update(recurrent_state=..., conv_state=..., layer_idx=..., offset=...)`.
"""
from __future__ import annotations

from typing import Any

import torch


class Cache:
    is_compileable = True

    def __init__(self, seen_tokens: int = 0) -> None:
        self.states: list[dict[str, Any]] = []
        self._seen_tokens = seen_tokens

    def __getitem__(self, layer_idx: int) -> dict[str, Any]:
        if layer_idx < len(self.states):
            return self.states[layer_idx]
        raise KeyError(f"Cache only has {len(self.states)} layers, attempted to access layer with index {layer_idx}")

    def __iter__(self):
        yield from self.states

    def __len__(self) -> int:
        return len(self.states)

    def update(self, recurrent_state: Any = None, attn_state: tuple[torch.Tensor, ...] | None = None,
               conv_state: Any = None, ffn_state: Any = None, layer_idx: int = 0, offset: int | None = 1,
               cache_kwargs: dict[str, Any] | None = None, **_: Any) -> dict[str, Any]:
        if attn_state is not None and not isinstance(attn_state, (tuple, list)):
            raise ValueError("`attn_state` must be a tuple/list of tensors")
        if layer_idx == 0:  # layer 0 counts the tokens, once per forward
            self._seen_tokens += offset or 0
        if len(self.states) <= layer_idx:
            while len(self.states) < layer_idx:  # a layer may be skipped; keep indices aligned
                self.states.append(dict(recurrent_state=None, attn_state=None, conv_state=None, ffn_state=None))
            self.states.append(dict(recurrent_state=recurrent_state, attn_state=attn_state,
                                    conv_state=conv_state, ffn_state=ffn_state))
            return self.states[layer_idx]
        state = self.states[layer_idx]
        if recurrent_state is not None:
            state["recurrent_state"] = recurrent_state
        if attn_state is not None:  # keys/values grow along the time axis
            old = state["attn_state"]
            state["attn_state"] = attn_state if old is None else tuple(
                torch.cat([o, n], dim=1) for o, n in zip(old, attn_state))
        if conv_state is not None:
            state["conv_state"] = conv_state
        if ffn_state is not None:
            state["ffn_state"] = ffn_state
        return state

    def get_seq_length(self, layer_idx: int | None = 0) -> int:
        return 0 if len(self.states) <= (layer_idx or 0) else self._seen_tokens

    def get_max_length(self) -> int | None:
        return None

    def to_legacy_cache(self) -> tuple:
        return tuple(self.states)

    @classmethod
    def from_legacy_cache(cls, past_key_values: tuple | None = None, seen_tokens: int = 0) -> "Cache":
        cache = cls(seen_tokens)
        for layer_idx, state in enumerate(past_key_values or ()):
            cache.update(**state, layer_idx=layer_idx, offset=0)
        return cache


__all__ = ["Cache"]
