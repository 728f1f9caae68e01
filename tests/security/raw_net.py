"""What a sandbox child can see, checked from inside without relying on the audit hook:
`python -m tests.security.raw_net [view]` (run by test_hostile.py through the sandbox)."""
import json
import os
import socket
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def main(argv):
    if argv[:1] == ["mounts"]:  # the child's filesystem, listed from inside (issue 25, point 3)
        import sysconfig
        site = sysconfig.get_paths()["purelib"]
        out = {"root": sorted(os.listdir("/")), "repo": sorted(os.listdir(REPO)), "tmp": sorted(os.listdir("/tmp")),
               "site_packages": sorted(os.listdir(site)) if os.path.isdir(site) else None,
               "readable": {p: os.path.exists(p) for p in argv[1:]}}
    elif argv[:1] == ["view"]:
        data = REPO / ".archlab"
        out = {"pids": [p for p in os.listdir("/proc") if p.isdigit()],
               "archlab_dir": os.listdir(data) if data.is_dir() else None,
               "host_dirs": [d for d in ("/home", "/var", "/srv", "/opt", "/mnt", os.path.join("/root", ".ssh"))
                             if os.path.exists(d)],
               "root_visible": sorted(os.listdir("/root")) if os.path.isdir("/root") else []}
        out["root_visible"] = [d for d in out["root_visible"] if d != ".pyenv"] + out["host_dirs"]
    else:  # interfaces of the namespace (no audit event): only loopback
        names = [n for _, n in socket.if_nameindex()]
        out = {"interfaces": names, "error": names == ["lo"]}
    with open(os.environ["ARCHLAB_SANDBOX_RESULT"], "w") as f:
        json.dump(out, f)


if __name__ == "__main__":
    main(sys.argv[1:])
