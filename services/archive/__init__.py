"""The archive: the read model projected from every topic, the elite pool, parent sampling, replay and audit."""
