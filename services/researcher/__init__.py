"""The researcher: ParentSampled -> ProposalRejected* -> ProposalCreated | ExperimentAbandoned.

Read in this order:
- genome.py      the offline vocabulary of mechanisms; a design is a dict of genes; ZOO_DESIGNS
- codegen.py     design -> complete, readable layer program (chunked core ops, the layer contract)
- mutator.py     seeded edits/crossover of a parent's design + a mechanistic motivation
- context.py     the compact brief of parent + references (summaries cached in SQLite)
- planner.py     proposers: OfflineProposer (mutator) and LLMPlanner (shared LLM client, role "planner")
- novelty.py     duplicate check: normalised-code hash, 5 nearest motivations, LLM judge or threshold
- checks.py      static vetting here, dynamic checks in the sandbox (checks_child.py): build,
                 param_budget, shape, causality, complexity
- handlers.py    the attempts loop with feedback (plain async functions, no Kafka)
- main.py        wiring on the bus
"""
