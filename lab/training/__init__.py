"""Training a layer: profiles, model, data, loop, evaluation, monitor, sandboxed runner, trusted scoring."""
