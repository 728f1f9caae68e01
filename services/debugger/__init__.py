"""The debugger service: a failed run's revision (ASI-Arch's self-revision), in its own consumer group."""
