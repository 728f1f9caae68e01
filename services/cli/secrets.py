"""The `archlab` process that starts services holds no credential in its environment (issue 13, point 3).

The CLI is the ancestor of every service it starts, the engineer (which runs generated code) included, and
`/proc/<pid>/environ` shows a process's environment as it was at exec time: deleting a variable from
os.environ changes nothing there. So `archlab up | run | restart`, given `ARCHLAB_LLM_API_KEY` (or any other
credential-like variable, confine.SECRET_MARKERS), write the LLM key to `<data_dir>/secrets/llm_api_key`
(directory 0700, file 0600, atomic) and exec themselves again, same pid and arguments, with an environment
without those variables and with `ARCHLAB_LLM_API_KEY_FILE` naming the file. The stack passes that path only
to the LLM services (stack._launch); the sandbox never sees the data directory (confine.hidden_dirs).
"""
from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

from lab import confine

KEY_VAR = "ARCHLAB_LLM_API_KEY"
FILE_VAR = "ARCHLAB_LLM_API_KEY_FILE"


def key_file(data_dir: Path) -> Path:
    return Path(data_dir).resolve() / "secrets" / "llm_api_key"


def write_key_file(data_dir: Path, key: str) -> Path:
    """Write `key` to <data_dir>/secrets/llm_api_key (dir 0700, file 0600, atomic rename); returns the path."""
    path = key_file(data_dir)
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(path.parent, 0o700)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".llm_api_key.")  # created 0600
    try:
        with os.fdopen(fd, "w") as f:
            f.write(key.strip())
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def _cli_argv() -> list[str] | None:
    """The argv that runs this same `archlab` command again, or None when this process is not the CLI
    (an in-process caller such as typer's CliRunner: it is not ours to replace)."""
    main = sys.modules.get("__main__")
    main_file = Path(getattr(main, "__file__", "") or "")
    cli_main = Path(__file__).resolve().parent / "main.py"
    if main_file.name == "archlab" or (main_file.name and main_file.resolve() == cli_main):
        return [sys.executable, *sys.orig_argv[1:]]   # interpreter options, script or -m module, arguments
    return None


def drop_secrets_from_environment(data_dir: Path) -> None:
    """If credential-like variables are in this CLI's environment: move the LLM key to its file and exec
    this command again without them (does not return then). A no-op when there are none, or in-process."""
    secrets = [k for k in os.environ if k != FILE_VAR and any(m in k.upper() for m in confine.SECRET_MARKERS)]
    argv = _cli_argv()
    if not secrets or argv is None:
        return
    env = confine.without_secrets(dict(os.environ))
    if os.environ.get(FILE_VAR):          # the operator's own key file wins, as in the LLM client
        env[FILE_VAR] = os.environ[FILE_VAR]
    elif os.environ.get(KEY_VAR, "").strip():
        env[FILE_VAR] = str(write_key_file(data_dir, os.environ[KEY_VAR]))
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(sys.executable, argv, env)
