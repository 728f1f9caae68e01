"""Wiring of the debugger service.

    python -m services.debugger.main     # one debugger consumer (group "debugger"); run one or more

It is its own process so that no engineer (no GPU) is held while an LLM thinks.
"""
from __future__ import annotations

import functools
from pathlib import Path

from schemas import events as ev
from services.common.bus import Service
from services.common.settings import Settings
from services.debugger import handlers
from services.debugger.repair import Debugger, DebuggerMemory


def build(settings: Settings | None = None, llm=None) -> Service:
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


if __name__ == "__main__":
    build().run()
