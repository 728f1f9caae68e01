"""A long-poll gateway in front of the embedded broker: idle consumers cost ~nothing.

Why it exists. A Kafka broker holds an empty Fetch for up to the request's `max_wait_ms`, so an
idle consumer sends about two requests a second. noida-db (the embedded broker) answers an empty
Fetch at once, and aiokafka fetches again immediately: one idle consumer burns a whole core, and
the dozen consumers of the embedded stack eat the machine (measured: 18-19 % of a core per idle
service, the training child starved to 0.18x of its speed).

What it does. It listens on the address every client is given and relays Kafka-protocol frames
to the broker, one upstream connection per client connection, frames untouched but for two
things:
- an **empty Fetch response** (no records, no error) is held until the request's `max_wait_ms`
  has passed since it arrived, or until a Produce / EndTxn response passed through the gateway
  after the Fetch was sent (new data may be there), whichever comes first. That is the broker
  behaviour Kafka's protocol describes; the client then fetches again and sees the data;
- the broker's own address in Metadata, FindCoordinator and DescribeCluster responses is
  rewritten to the gateway's, so that clients keep talking through it. Only the port differs
  (both bind 127.0.0.1), so the rewrite replaces four bytes and never changes a frame's size.

Responses on one connection keep their order (Kafka's own rule: a broker handles one request
per connection at a time), so holding a Fetch delays the requests behind it on the same
connection just as a real broker would. A Fetch version the gateway cannot decode is relayed
at once, unheld. Nothing is buffered beyond the frame in hand; a client or broker that goes
away closes the other side, and the client reconnects as it would to a restarted broker.

Against a broker that holds fetches (Apache Kafka, any `ARCHLAB_KAFKA_BOOTSTRAP`) there is no
gateway at all: the lab then costs nothing extra.

    python -m services.common.kafka_gateway --listen 9092 --upstream 127.0.0.1:39092
"""
from __future__ import annotations

import argparse
import asyncio
import signal
import struct
import time
from collections import deque
from dataclasses import dataclass

from aiokafka.protocol import fetch as fetch_protocol

FETCH, PRODUCE, METADATA, FIND_COORDINATOR, END_TXN, DESCRIBE_CLUSTER = 1, 0, 3, 10, 26, 60
REWRITTEN = {METADATA, FIND_COORDINATOR, DESCRIBE_CLUSTER}
DATA_ARRIVED = {PRODUCE, END_TXN}
# Fetch became a flexible (tagged-field) version at v12; below it the body starts with
# replica_id, max_wait_ms and the response decodes with aiokafka's own structs.
FETCH_RESPONSES = {v: getattr(fetch_protocol, f"FetchResponse_v{v}") for v in range(12)
                   if hasattr(fetch_protocol, f"FetchResponse_v{v}")}
MAX_HOLD_S = 30.0   # a client asking for longer is held at most this long


@dataclass
class Pending:
    """A request relayed upstream whose response has not come back yet."""
    api_key: int
    api_version: int
    correlation_id: int
    received_at: float
    max_wait_s: float = 0.0
    data_event: asyncio.Event | None = None     # set when data may have arrived after this request


def read_request_header(frame: bytes) -> tuple[int, int, int, int]:
    """(api_key, api_version, correlation_id, offset of the body) of a request frame (v1 header).

    The v2 (flexible) header adds tagged fields after client_id; only non-flexible Fetch bodies
    are read, so the offset is right wherever it is used.
    """
    api_key, api_version, correlation_id, client_len = struct.unpack_from(">hhih", frame, 0)
    return api_key, api_version, correlation_id, 10 + max(client_len, 0)


def fetch_is_empty(api_version: int, body: bytes) -> bool:
    """True if a Fetch response (body after the correlation id) carries no records and no error."""
    cls = FETCH_RESPONSES.get(api_version)
    if cls is None:
        return False
    try:
        response = cls.decode(body)
    except Exception:  # noqa: BLE001 - anything undecodable is relayed as it is
        return False
    if getattr(response, "error_code", 0):
        return False
    for _topic, partitions in response.topics:
        for partition in partitions:
            if partition[1] != 0 or partition[-1]:   # error_code, records
                return False
    return True


class Gateway:
    def __init__(self, listen_port: int, upstream_host: str, upstream_port: int, host: str = "127.0.0.1"):
        self.host, self.listen_port = host, listen_port
        self.upstream_host, self.upstream_port = upstream_host, upstream_port
        self._data_event = asyncio.Event()
        self._old_addr = upstream_host.encode() + struct.pack(">i", upstream_port)
        self._new_addr = upstream_host.encode() + struct.pack(">i", listen_port)
        self.stats = {"connections": 0, "requests": 0, "fetches_held": 0, "wakeups": 0}
        self._server: asyncio.base_events.Server | None = None

    def data_arrived(self) -> None:
        """Wake every held Fetch: a Produce (or a committed transaction) came back from the broker."""
        event, self._data_event = self._data_event, asyncio.Event()
        event.set()
        self.stats["wakeups"] += 1

    async def start(self) -> None:
        if self.upstream_host != self.host:
            raise ValueError("the gateway rewrites only the port: bind it on the broker's host")
        self._server = await asyncio.start_server(self._serve_client, self.host, self.listen_port)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    async def _serve_client(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        self.stats["connections"] += 1
        try:
            up_r, up_w = await asyncio.open_connection(self.upstream_host, self.upstream_port)
        except OSError:
            client_w.close()   # broker down: the client sees a closed connection and retries
            return
        pending: deque[Pending] = deque()
        arrived = asyncio.Event()   # a new entry in `pending`
        tasks = [asyncio.create_task(self._requests(client_r, up_w, pending, arrived)),
                 asyncio.create_task(self._responses(up_r, client_w, pending, arrived))]
        try:
            await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for t in tasks:
                t.cancel()
            for w in (client_w, up_w):
                w.close()

    async def _requests(self, client_r, up_w, pending: deque[Pending], arrived: asyncio.Event) -> None:
        while True:
            frame = await _read_frame(client_r)
            if frame is None:
                return
            self.stats["requests"] += 1
            api_key, api_version, correlation_id, body_at = read_request_header(frame)
            entry = Pending(api_key, api_version, correlation_id, time.monotonic())
            if api_key == FETCH and api_version in FETCH_RESPONSES:
                max_wait_ms = struct.unpack_from(">i", frame, body_at + 4)[0]   # after replica_id
                entry.max_wait_s = min(max(max_wait_ms, 0) / 1000.0, MAX_HOLD_S)
                entry.data_event = self._data_event
            pending.append(entry)
            arrived.set()
            up_w.write(struct.pack(">i", len(frame)) + frame)
            await up_w.drain()

    async def _responses(self, up_r, client_w, pending: deque[Pending], arrived: asyncio.Event) -> None:
        while True:
            frame = await _read_frame(up_r)
            if frame is None:
                return
            while not pending:   # a response can overtake the bookkeeping of its own request
                arrived.clear()
                await arrived.wait()
            entry = pending.popleft()
            if entry.api_key in REWRITTEN:
                frame = frame.replace(self._old_addr, self._new_addr)
            elif entry.data_event is not None and fetch_is_empty(entry.api_version, frame[4:]):
                await self._hold(entry)
            client_w.write(struct.pack(">i", len(frame)) + frame)
            await client_w.drain()
            if entry.api_key in DATA_ARRIVED:
                self.data_arrived()

    async def _hold(self, entry: Pending) -> None:
        remaining = entry.received_at + entry.max_wait_s - time.monotonic()
        if remaining <= 0 or entry.data_event.is_set():
            return
        self.stats["fetches_held"] += 1
        try:
            await asyncio.wait_for(entry.data_event.wait(), remaining)
        except asyncio.TimeoutError:
            pass


async def _read_frame(reader: asyncio.StreamReader) -> bytes | None:
    try:
        size = struct.unpack(">i", await reader.readexactly(4))[0]
        return await reader.readexactly(size)
    except (asyncio.IncompleteReadError, ConnectionError):
        return None


async def serve(listen_port: int, upstream: str) -> None:
    host, port = upstream.rsplit(":", 1)
    gateway = Gateway(listen_port, host, int(port))
    await gateway.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    print(f"kafka gateway listening on 127.0.0.1:{listen_port} -> {upstream}", flush=True)
    await stop.wait()
    await gateway.stop()
    print(f"kafka gateway stopped {gateway.stats}", flush=True)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--listen", type=int, required=True, help="port on 127.0.0.1 the clients are given")
    parser.add_argument("--upstream", required=True, help="the broker, 127.0.0.1:PORT")
    args = parser.parse_args(argv)
    asyncio.run(serve(args.listen, args.upstream))


if __name__ == "__main__":
    main()
