"""Offline tools built on the core: zoo validity (`archlab zoo bench`), scoring one program file."""
