"""Hostile programs for the sandbox tests: `python -m tests.engineer.hostile CASE [ARG]`.

Each case is what a generated program might do; the sandbox must contain it.
"""
import json
import os
import sys


def write_result(obj):
    with open(os.environ["ARCHLAB_SANDBOX_RESULT"], "w") as f:
        json.dump(obj, f)


def main(case, arg=None):
    if case == "ok":
        print(json.dumps({"progress": {"step": 1}}), flush=True)
        print(json.dumps({"progress": {"step": 2}}), flush=True)
        write_result({"answer": 42, "cwd": os.getcwd(), "home": os.environ.get("HOME")})
    elif case == "env":
        write_result({"env": dict(os.environ)})
    elif case == "parent_environ":
        with open(f"/proc/{os.getppid()}/environ", "rb") as f:
            write_result({"leak": f.read().decode(errors="replace")})
    elif case == "burn":   # not hostile: a known cost, for the sandbox's CPU and memory accounting
        block = bytearray(200 * 2**20)
        block[::4096] = b"x" * len(block[::4096])   # touch every page: 200 MB resident
        import time
        end = time.process_time() + float(arg)
        while time.process_time() < end:
            pass
        write_result({"burnt_s": time.process_time()})
    elif case == "loop":
        print("looping", flush=True)
        while True:
            pass
    elif case == "fork_bomb":
        while True:
            try:
                os.fork()
            except Exception:  # a program that swallows the refusal is still reported
                pass
    elif case == "subprocess":
        import subprocess
        subprocess.run(["echo", "hi"])
    elif case == "memory_hog":
        hog = []
        while True:
            hog.append(bytearray(64 * 2**20))
    elif case == "torch_hog":
        import torch
        torch.ones(2**36, dtype=torch.uint8)
    elif case == "write_outside":
        with open(arg, "w") as f:
            f.write("pwned")
    elif case == "write_allowed":
        with open(arg, "w") as f:
            f.write("fine")
        write_result({"wrote": arg})
    elif case == "socket":
        import socket
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.connect(("127.0.0.1", int(arg or 9)))
    elif case == "kill_parent":
        import signal
        os.kill(os.getppid(), signal.SIGKILL)
    elif case == "exception":
        def inner():
            raise ValueError("the generated layer exploded")
        inner()
    elif case == "segfault":
        import signal
        os.kill(os.getpid(), signal.SIGSEGV)
    elif case == "threads":
        import torch
        write_result({"torch_threads": torch.get_num_threads(), "omp": os.environ.get("OMP_NUM_THREADS")})
    elif case == "link_result":   # the result file a link to a file of the lab's (ARG): read out as our result?
        os.symlink(arg, os.environ["ARCHLAB_SANDBOX_RESULT"])
    elif case == "fifo_result":   # the result file a FIFO: a parent that opens it to read blocks for good
        os.mkfifo(os.environ["ARCHLAB_SANDBOX_RESULT"])
    else:
        raise SystemExit(f"unknown case {case}")


if __name__ == "__main__":
    main(*sys.argv[1:])
