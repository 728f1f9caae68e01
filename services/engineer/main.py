"""Wiring of the engineer service.

    python -m services.engineer.main    # one engineer worker (run as many as there are GPUs)

The worker does not use consumer groups for work (see worker.py). The debugger, which revises
failed runs, is its own service: services/debugger.
"""
from __future__ import annotations

import argparse

from services.common.settings import Settings, get_settings
from services.engineer.worker import Worker, WorkerConfig


def build_worker(settings: Settings | None = None, **config) -> Worker:
    settings = settings or get_settings()
    return Worker(settings, WorkerConfig.from_settings(settings, **config))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m services.engineer.main")
    parser.add_argument("--engineer-id", default=None, help="this engineer's id (default: hostname-pid)")
    args = parser.parse_args(argv)
    overrides = {"engineer_id": args.engineer_id} if args.engineer_id else {}
    build_worker(**overrides).run()


if __name__ == "__main__":
    main()
