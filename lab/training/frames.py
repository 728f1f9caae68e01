"""Length-prefixed frames on a stream socket: a JSON header, then raw bytes (never pickle).

    send_frame(sock, {"op": "forward", "shape": [2, 64]}, payload)
    header, payload = recv_frame(sock, max_payload=2**30)
"""
from __future__ import annotations

import json
import socket
import struct

MAX_HEADER = 64 * 1024


class FrameError(Exception):
    pass


def send_frame(sock: socket.socket, header: dict, payload: bytes = b"") -> None:
    head = json.dumps({**header, "nbytes": len(payload)}).encode()
    sock.sendall(struct.pack(">I", len(head)) + head + payload)


def _recv_exact(sock: socket.socket, n: int) -> bytes:
    buf = bytearray()
    while len(buf) < n:
        chunk = sock.recv(min(n - len(buf), 1 << 20))
        if not chunk:
            raise FrameError(f"connection closed after {len(buf)} of {n} bytes")
        buf += chunk
    return bytes(buf)


def recv_frame(sock: socket.socket, max_payload: int = 1 << 31) -> tuple[dict, bytes]:
    (n,) = struct.unpack(">I", _recv_exact(sock, 4))
    if n > MAX_HEADER:
        raise FrameError(f"frame header of {n} bytes")
    try:
        header = json.loads(_recv_exact(sock, n))
    except ValueError as e:
        raise FrameError(f"malformed frame header: {e}") from None
    if not isinstance(header, dict):
        raise FrameError("frame header is not an object")
    size = header.get("nbytes", 0)
    if not isinstance(size, int) or size < 0 or size > max_payload:
        raise FrameError(f"frame payload of {size!r} bytes")
    return header, _recv_exact(sock, size)
