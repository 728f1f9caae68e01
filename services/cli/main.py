"""`archlab`: the command line of the lab (typer + rich).

Stack: up, down, status, tap, topics, schemas. Other areas register their commands from their
own modules (`services/cli/<area>.py`, each with `register(app)`).
"""
from __future__ import annotations

import asyncio
import importlib
import json
from pathlib import Path
from typing import Optional

import typer
from rich.table import Table

from services.cli.console import make_console
from services.common.settings import load_settings

app = typer.Typer(help="archlab: an autonomous research lab for linear-attention architectures.",
                  no_args_is_help=True, pretty_exceptions_show_locals=False)
schemas_app = typer.Typer(help="The event contract.", no_args_is_help=True)
topics_app = typer.Typer(help="Kafka topics of the lab.", no_args_is_help=True)
app.add_typer(schemas_app, name="schemas")
app.add_typer(topics_app, name="topics")
console = make_console()

DataDir = typer.Option(None, "--data-dir", help="State directory (default: $ARCHLAB_DATA_DIR or ./.archlab)")


@app.command()
def up(engineers: int = typer.Option(1, min=1, help="engineer worker processes"), data_dir: Optional[Path] = DataDir):
    """Start the embedded stack: Kafka-protocol broker, milvus-lite, and one process per service."""
    from services.cli import secrets, stack

    from services.cli.doctor import preflight

    settings = load_settings(data_dir)
    secrets.drop_secrets_from_environment(settings.data_dir)  # execs again without the key (services/cli/secrets.py)
    if not preflight(settings, console):
        raise typer.Exit(3)
    state = stack.up(settings, engineers=engineers, progress=lambda m: console.print(f"[green]•[/] {m}"))
    console.print(f"[bold]stack up[/]: broker {state.kafka}, {len(state.processes)} processes, "
                  f"data in {state.data_dir}")
    from services.cli.ui import ui_url
    console.print(f"web UI: {ui_url(state.data_dir) or 'not running'}")


@app.command()
def down(data_dir: Optional[Path] = DataDir):
    """Stop every process of the embedded stack (services, then vector store, then broker)."""
    from services.cli import stack

    clean = stack.down(load_settings(data_dir), progress=lambda m: console.print(f"[yellow]•[/] {m}"))
    if not clean:
        raise typer.Exit(1)


@app.command()
def restart(name: str = typer.Argument(..., help="process name as `archlab status` lists it, e.g. archive, "
                                        "engineer-2, kafka"),
            timeout: float = typer.Option(300, help="seconds to wait for the service to report it started"),
            data_dir: Optional[Path] = DataDir):
    """Stop and start one process of the running stack (the broker keeps its port and data)."""
    from services.cli import secrets, stack

    secrets.drop_secrets_from_environment(load_settings(data_dir).data_dir)
    try:
        stack.restart(load_settings(data_dir), name, timeout=timeout,
                      progress=lambda m: console.print(f"[green]•[/] {m}"))
    except (KeyError, ValueError, RuntimeError) as e:
        console.print(f"[red]{e}[/]")
        raise typer.Exit(2)


@app.command()
def status(data_dir: Optional[Path] = DataDir):
    """Processes, broker address, topic offsets and consumer-group lag."""
    from schemas.topics import all_topics
    from schemas.topics import DEAD_LETTER_TOPIC
    from services.cli import stack
    from services.common.embedded import pid_alive
    from services.common.log_reader import end_offsets

    settings = stack.absolute(load_settings(data_dir))
    state = stack.StackState.load(stack.endpoints.stack_file(settings))
    if state is None:
        console.print("no stack running (start one with `archlab up`)")
        raise typer.Exit(1)
    procs = Table(title="processes")
    for col in ("name", "pid", "state"):
        procs.add_column(col)
    for name, pid in state.processes.items():
        procs.add_row(name, str(pid), "[green]running[/]" if pid_alive(pid) else "[red]dead[/]")
    console.print(procs)
    console.print(f"broker: {state.kafka}   vectors: {state.milvus}   data: {state.data_dir}")
    try:
        ends = asyncio.run(end_offsets(state.kafka, all_topics()))
        lag = asyncio.run(stack.group_lag(state.kafka))
    except Exception as e:  # noqa: BLE001 - status must still print what it can
        console.print(f"[red]broker unreachable[/]: {e!r}")
        raise typer.Exit(1)
    offsets = Table(title="topics (events = end offsets summed over partitions)")
    offsets.add_column("topic")
    offsets.add_column("events", justify="right")
    for topic in all_topics():
        offsets.add_row(topic, str(sum(v for (t, _), v in ends.items() if t == topic)))
    console.print(offsets)
    groups = Table(title="consumer groups")
    groups.add_column("group")
    groups.add_column("lag", justify="right")
    for group, n in lag.items():
        groups.add_row(group, str(n))
    console.print(groups)
    letters = sum(v for (t, _), v in ends.items() if t == DEAD_LETTER_TOPIC)
    if letters:
        console.print(f"[red]{letters} dead letter(s)[/]: inputs a service could not handle (each ended its "
                      "experiment, docs/archive.md); read them with `archlab tap --from-beginning --dead-letters`")


@app.command()
def tap(types: list[str] = typer.Option([], "--type", "-t", help="event type(s), e.g. ResultsReady"),
        experiment: Optional[str] = typer.Option(None, help="only this experiment_id"),
        campaign: Optional[str] = typer.Option(None, help="only this campaign_id"),
        from_beginning: bool = typer.Option(False, "--from-beginning", help="read the log from offset 0"),
        follow: Optional[bool] = typer.Option(None, "--follow/--no-follow",
                                              help="keep streaming (default: on, except with --from-beginning)"),
        dead_letters: bool = typer.Option(False, "--dead-letters", help="include the dead-letter topic"),
        limit: Optional[int] = typer.Option(None, help="stop after N events"),
        data_dir: Optional[Path] = DataDir):
    """Stream events as JSON lines (the audit tap)."""
    from schemas.events import EVENT_TYPES
    from schemas.topics import DEAD_LETTER_TOPIC, topic_for
    from services.cli.choices import one_of
    from services.common import endpoints
    from services.common.log_reader import read_log

    for t in types:
        one_of(t, sorted(EVENT_TYPES), "--type", "event type")
    topics = [topic_for(t) for t in (types or sorted(EVENT_TYPES))]
    if dead_letters:
        topics.append(DEAD_LETTER_TOPIC)
    bootstrap = endpoints.kafka_bootstrap(load_settings(data_dir))
    keep_following = (not from_beginning) if follow is None else follow

    async def stream() -> None:
        n = 0
        async for rec in read_log(bootstrap, topics, from_beginning=from_beginning, follow=keep_following):
            try:
                data = json.loads(rec.value)
            except ValueError:
                data = {"undecodable": rec.value.decode(errors="replace")}
            if experiment and data.get("experiment_id") != experiment:
                continue
            if campaign and data.get("campaign_id") != campaign:
                continue
            print(json.dumps({"topic": rec.topic, "partition": rec.partition, "offset": rec.offset, **data}),
                  flush=True)
            n += 1
            if limit is not None and n >= limit:
                return

    try:
        asyncio.run(stream())
    except KeyboardInterrupt:
        pass


@schemas_app.command("export")
def schemas_export(out: Path = typer.Option(Path("docs"), help="output directory")):
    """Write the JSON Schema of every event and the AsyncAPI document under OUT."""
    from schemas.export import export

    for path in export(out):
        console.print(f"wrote {path}")


@topics_app.command("create")
def topics_create(data_dir: Optional[Path] = DataDir):
    """Create every topic of the registry on the configured broker (idempotent)."""
    from services.common import endpoints
    from services.common.bus import ensure_topics

    settings = load_settings(data_dir)
    created = asyncio.run(ensure_topics(endpoints.kafka_bootstrap(settings), settings.partitions,
                                        settings.replication_factor))
    console.print(f"{len(created)} topic(s) created")


@topics_app.command("list")
def topics_list():
    """The topic registry."""
    from schemas.topics import TOPICS, DEAD_LETTER_TOPIC

    for name, spec in TOPICS.items():
        console.print(f"{spec.name:36} {name}")
    console.print(f"{DEAD_LETTER_TOPIC:36} (dead letters)")


# Commands of other areas: each module exposes register(app).
for _module in ("services.cli.campaign", "services.cli.report", "services.cli.archive", "services.cli.judge", "services.cli.cognition",
                "services.cli.researcher", "services.cli.zoo", "services.cli.data", "services.cli.doctor", "services.cli.ui"):
    if importlib.util.find_spec(_module) is not None:
        importlib.import_module(_module).register(app)


# What to do about an error a verb did not handle itself: the first matching type's hint.
ERROR_HINTS: list[tuple[str, str]] = [
    ("StackNotRunning", "start the stack with `archlab up` (or set ARCHLAB_KAFKA_BOOTSTRAP)"),
    ("MilvusException", "the vector store did not answer: `archlab status`, then `archlab restart milvus`"),
    ("KafkaConnectionError", "the broker did not answer: `archlab status`, then `archlab restart kafka`"),
    ("KafkaError", "the broker refused the request: `archlab status`, then `archlab restart kafka`"),
    ("OSError", "check the path or permission named above"),
]


def _hint(error: BaseException) -> str:
    names = {cls.__name__ for cls in type(error).__mro__}
    return next((hint for name, hint in ERROR_HINTS if name in names),
                "run the command again with --debug for the traceback")


def main() -> None:
    """The `archlab` command. An error no verb handled prints one line of cause and one of what to do; its
    traceback goes to <data dir>/logs/cli.log, and to the terminal with --debug (or ARCHLAB_DEBUG=1)."""
    import os
    import sys
    import traceback

    debug = "--debug" in sys.argv[1:] or os.environ.get("ARCHLAB_DEBUG") == "1"
    sys.argv = [a for a in sys.argv if a != "--debug"]
    try:
        app()
    except Exception as e:  # noqa: BLE001 - the last place an error can be said plainly
        log = Path(load_settings().data_dir) / "logs" / "cli.log"
        try:
            log.parent.mkdir(parents=True, exist_ok=True)
            with log.open("a") as f:
                f.write(f"--- archlab {' '.join(sys.argv[1:])}\n{traceback.format_exc()}\n")
        except OSError:
            log = None
        if debug:
            traceback.print_exc()
        cause = str(e).strip().splitlines()[0] if str(e).strip() else ""
        console.print(f"error: {type(e).__name__}: {cause[:300]}", markup=False, highlight=False)
        console.print(f"what to do: {_hint(e)}" + (f" (traceback in {log})" if log else ""), markup=False,
                      highlight=False)
        sys.exit(1)


if __name__ == "__main__":
    main()
