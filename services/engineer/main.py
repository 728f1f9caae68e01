"""Wiring of the engineer service.

    python -m services.engineer.main              # one engineer worker (run as many as there are GPUs)
    python -m services.engineer.main --debugger   # the debugger consumer (group "debugger"), one or more

The worker does not use consumer groups for work (see worker.py); the debugger is an ordinary
`Service` consumer.
"""
from __future__ import annotations

import argparse
import functools
from pathlib import Path

from schemas import events as ev
from services.common.bus import Service
from services.common.settings import Settings, get_settings
from services.engineer import handlers
from services.engineer.debugger import Debugger, DebuggerMemory
from services.engineer.worker import Worker, WorkerConfig


def build_worker(settings: Settings | None = None, **config) -> Worker:
    settings = settings or get_settings()
    return Worker(settings, WorkerConfig.from_settings(settings, **config))


def build_debugger(settings: Settings | None = None, llm=None) -> Service:
    svc = Service("debugger", settings)
    debugger = Debugger(svc.settings, DebuggerMemory(Path(svc.settings.data_dir) / "debugger.sqlite"), llm=llm)
    svc.on(ev.TrainingFailed, functools.partial(handlers.on_training_failed, debugger=debugger))
    # context for revisions, in a sibling group so that a failure handler waiting for its proposal
    # never blocks the consumer that brings it
    svc.on(ev.ProposalCreated, functools.partial(handlers.on_proposal_created, debugger=debugger),
           group="debugger-memory")
    svc.on(ev.ParentSampled, functools.partial(handlers.on_parent_sampled, debugger=debugger),
           group="debugger-memory")
    return svc


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m services.engineer.main")
    parser.add_argument("--debugger", action="store_true", help="run the debugger consumer instead of a worker")
    parser.add_argument("--engineer-id", default=None, help="this engineer's id (default: hostname-pid)")
    args = parser.parse_args(argv)
    if args.debugger:
        build_debugger().run()
        return
    overrides = {"engineer_id": args.engineer_id} if args.engineer_id else {}
    build_worker(**overrides).run()


if __name__ == "__main__":
    main()
