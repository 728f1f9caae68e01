"""The lab's core: what archlab knows, with no Kafka in it.

- `program`, `checks`, `checks_child`: the layer contract, the loader, the one code hash, the static
  and sanity checks a proposal must pass.
- `sandbox`, `confine`, `fla_shim`: running untrusted programs (bubblewrap) and the CPU stand-in for fla.
- `training/`: profiles, the model around a layer, data, the training loop, evaluation, the monitor,
  the sandboxed runner and the trusted scoring.
- `zoo/`: the reference layers (DeltaNet, Gated DeltaNet, softmax, ...).
- `judging/`: fitness, scoring a result, rescoring a campaign.
- `lifecycle`: an experiment's lifecycle, folded from its events (one definition for every reader).
- `tools/`: offline tools (zoo validity, scoring one file).

Services import this package, `schemas` and `services.common`; this package imports neither
`services.*` nor Kafka (tests/test_architecture.py checks both).
"""
