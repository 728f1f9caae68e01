"""The UI's HTTP server (standard library only): pages, the shipped static files, and a live stream.

Safety, by construction:
- GET and HEAD only; the read model is opened read-only (readmodel.py).
- A token, when set (required for any bind but loopback), is checked on every request, the stream
  included: `Authorization: Bearer T`, the cookie `archlab_ui`, or `?token=T` once (it then sets
  the cookie, HttpOnly and SameSite=Strict).
- Static files come from a fixed list shipped in the package; no request names a path on disk.
- Every page carries a Content-Security-Policy that allows only the shipped scripts.
- Without a token, requests must name a loopback host (`Host:`), against DNS rebinding.

Live updates: `/events` is a server-sent-events stream. One watcher thread polls the read model
(`PRAGMA data_version`, then the newest applied event) twice a second while at least one stream is
open, and not at all otherwise; each stream tells its page what arrived, and the page re-fetches
its content (docs/ui.md says why this follows the read model rather than the log).
"""
from __future__ import annotations

import hmac
import json
import sqlite3
import threading
import time
from contextlib import closing
from http import HTTPStatus
from http.cookies import SimpleCookie
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, unquote, urlsplit

from services.ui.charts import LIBRARY, asset
from services.ui.embedding import VectorSource
from services.ui.handlers import PAGE_ROWS, Pages, esc
from services.ui.readmodel import ReadModel

COOKIE = "archlab_ui"
POLL_S = 0.5           # how often an open stream's watcher looks at the read model
HEARTBEAT_S = 15.0     # a comment on an idle stream, so proxies and browsers keep it open
STATIC = {             # the only files the server sends: name -> content type
    LIBRARY: "text/javascript; charset=utf-8", "charts.js": "text/javascript; charset=utf-8",
    "ui.js": "text/javascript; charset=utf-8", "ui.css": "text/css; charset=utf-8",
    "echarts-LICENSE.txt": "text/plain; charset=utf-8", "echarts-NOTICE.txt": "text/plain; charset=utf-8",
}
CSP = ("default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
       "connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'")
NAV = (("/campaign", "campaign"), ("/leaderboard", "leaderboard"), ("/genealogy", "genealogy"),
       ("/fitness", "fitness"), ("/embedding", "embedding map"),
       ("/compare", "compare"))
LOOPBACK = ("127.0.0.1", "localhost", "::1")


class Watcher:
    """Notices what the archive applies and wakes the open streams. Idle (no stream): no polling."""

    def __init__(self, model: ReadModel):
        self.model = model
        self.cond = threading.Condition()
        self.seq = 0                    # rowid of the newest applied event seen
        self.recent: list[dict] = []    # the last events seen, for the streams to send
        self.streams = 0
        self.stopped = False
        if model.exists():   # what the pages served from now on already show; a file that appears later is all news
            with closing(model.connect()) as db:
                self.seq = model.last_event(db)
        self._thread = threading.Thread(target=self._run, name="ui-watcher", daemon=True)
        self._thread.start()

    def subscribe(self) -> int:
        with self.cond:
            self.streams += 1
            self.cond.notify_all()
            return self.seq

    def unsubscribe(self) -> None:
        with self.cond:
            self.streams -= 1

    def wait(self, after: int, timeout: float) -> tuple[int, list[dict]]:
        """(the newest event's seq, the events newer than `after`), once there are any, or on timeout or stop.
        The seq can move without events: the watcher's first look at the read model sets it to the newest."""
        with self.cond:
            self.cond.wait_for(lambda: self.seq > after or self.stopped, timeout)
            return self.seq, [e for e in self.recent if e["seq"] > after]

    def stop(self) -> None:
        with self.cond:
            self.stopped = True
            self.cond.notify_all()

    def _run(self) -> None:
        db: sqlite3.Connection | None = None
        version = None
        while True:
            with self.cond:
                self.cond.wait_for(lambda: self.streams > 0 or self.stopped)
                if self.stopped:
                    break
            try:
                if db is None and self.model.exists():
                    db = self.model.connect()
                if db is not None:
                    (now,), = db.execute("PRAGMA data_version").fetchall()
                    if now != version:
                        version = now
                        self._publish(self.model.events_after(db, self.seq))
            except sqlite3.Error:
                if db is not None:
                    db.close()
                db = None   # the file was replaced (a replay): open it again
            time.sleep(POLL_S)
        if db is not None:
            db.close()

    def _publish(self, events: list[dict]) -> None:
        if not events:
            return
        with self.cond:
            self.recent = (self.recent + events)[-200:]
            self.seq = events[-1]["seq"]
            self.cond.notify_all()


class UIServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], model: ReadModel, token: str | None = None,
                 vectors: VectorSource | None = None):
        if address[0] not in LOOPBACK and not token:
            raise ValueError("a bind address other than loopback needs a token")
        super().__init__(address, UIHandler)
        self.model = model
        self.pages = Pages(model, vectors)
        self.token = token
        self.watcher = Watcher(model)
        # read the list fields once now, so the first page does not pay for it
        threading.Thread(target=model.rows, name="ui-warm", daemon=True).start()

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host}:{port}/"

    def shutdown(self) -> None:
        self.watcher.stop()
        super().shutdown()


class UIHandler(BaseHTTPRequestHandler):
    server: UIServer
    protocol_version = "HTTP/1.1"
    server_version = "archlab-ui"
    sys_version = ""

    def log_message(self, fmt: str, *args) -> None:   # quiet: the stack's logs are JSON lines of the services
        pass

    # ---------------------------------------------------------------- access
    def _token_given(self) -> tuple[str | None, bool]:
        """(token presented, whether it came in the query string)."""
        auth = self.headers.get("Authorization", "")
        if auth.startswith("Bearer "):
            return auth[7:].strip(), False
        cookie = SimpleCookie(self.headers.get("Cookie", ""))
        if COOKIE in cookie:
            return cookie[COOKIE].value, False
        given = parse_qs(urlsplit(self.path).query).get("token")
        return (given[0], True) if given else (None, False)

    def _allowed(self) -> tuple[bool, bool]:
        if not self.server.token:
            # no token: loopback only, and only under a loopback name, so that a web page whose name is
            # re-bound to 127.0.0.1 (DNS rebinding) cannot read the lab through the reader's browser
            host = urlsplit("//" + self.headers.get("Host", "")).hostname or ""
            return host in LOOPBACK, False
        given, from_query = self._token_given()
        ok = given is not None and hmac.compare_digest(given.encode(), self.server.token.encode())
        return ok, ok and from_query

    # ---------------------------------------------------------------- responses
    def _send(self, status: int, body: bytes, ctype: str, extra: dict[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Content-Security-Policy", CSP)
        self.send_header("X-Content-Type-Options", "nosniff")
        self.send_header("Referrer-Policy", "no-referrer")
        self.send_header("Cache-Control", "no-store" if not ctype.startswith("text/javascript") else "max-age=3600")
        for k, v in (extra or {}).items():
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _page(self, title: str, main: str, fragment: bool, extra: dict[str, str] | None = None) -> None:
        if fragment:
            body = main
        else:
            nav = "".join(f"<a href='{href}'>{label}</a>" for href, label in NAV)
            body = ("<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
                    "<meta name='viewport' content='width=device-width, initial-scale=1'>"
                    f"<link rel='icon' href='data:,'><title>{esc(title)} · archlab</title>"
                    "<link rel='stylesheet' href='/static/ui.css'></head><body>"
                    f"<header><b>archlab</b> {nav}<span id='live' class='live'>connecting…</span></header>"
                    f"<main id='content'>{main}</main><ol id='ticker' class='ticker'></ol>"
                    f"<script src='/static/{LIBRARY}'></script><script src='/static/charts.js'></script>"
                    "<script src='/static/ui.js'></script></body></html>")
        self._send(200, body.encode("utf-8"), "text/html; charset=utf-8", extra)

    def do_HEAD(self) -> None:
        self.do_GET()

    def do_GET(self) -> None:
        allowed, set_cookie = self._allowed()
        if not allowed:
            self._send(401, b"a token is required (?token=... once, or Authorization: Bearer ...)\n",
                       "text/plain; charset=utf-8", {"WWW-Authenticate": "Bearer"})
            return
        extra = {"Set-Cookie": f"{COOKIE}={self.server.token}; HttpOnly; SameSite=Strict; Path=/"} if set_cookie else {}
        url = urlsplit(self.path)
        query = {k: v[-1] for k, v in parse_qs(url.query).items()}
        fragment = query.get("fragment") == "1"
        path = url.path.rstrip("/") or "/"
        pages = self.server.pages
        try:
            if path.startswith("/static/"):
                name = path[len("/static/"):]
                if name not in STATIC:
                    self._send(404, b"not found\n", "text/plain; charset=utf-8")
                    return
                self._send(200, asset(name), STATIC[name], extra)
            elif path == "/events":
                self._stream()
            elif path in ("/", "/campaign"):
                self._page(*pages.campaign(query.get("campaign")), fragment, extra)
            elif path == "/leaderboard":
                self._page(*pages.leaderboard(query.get("campaign"), query.get("sort", "fitness"),
                                              query.get("desc", "1") != "0", query.get("family", ""),
                                              query.get("status", ""), query.get("significant", ""),
                                              query.get("confirmed", ""),
                                              int(query["limit"]) if query.get("limit", "").isdigit() else PAGE_ROWS),
                           fragment, extra)
            elif path == "/genealogy":
                self._page(*pages.genealogy(query.get("campaign")), fragment, extra)
            elif path == "/fitness":
                self._page(*pages.fitness(query.get("campaign")), fragment, extra)
            elif path == "/embedding":
                self._page(*pages.embedding(query.get("campaign")), fragment, extra)
            elif path == "/compare":
                ids = [i for i in query.get("ids", "").split(",") if i]
                self._page(*pages.compare(ids), fragment, extra)
            elif path.startswith("/experiment/"):
                found = pages.experiment(unquote(path[len("/experiment/"):]))
                if found is None:
                    self._send(404, b"no such experiment\n", "text/plain; charset=utf-8")
                    return
                self._page(*found, fragment, extra)
            else:
                self._send(404, b"not found\n", "text/plain; charset=utf-8")
        except (BrokenPipeError, ConnectionResetError):
            pass
        except sqlite3.Error as e:   # the archive is (re)building its file: say so, never a traceback
            self._send(503, f"read model unavailable: {e}\n".encode(), "text/plain; charset=utf-8")

    def do_POST(self) -> None:
        self._send(HTTPStatus.METHOD_NOT_ALLOWED, b"read-only\n", "text/plain; charset=utf-8", {"Allow": "GET, HEAD"})

    do_PUT = do_DELETE = do_PATCH = do_POST

    def _stream(self) -> None:
        """Server-sent events: `change` with the events the archive applied since the page was served."""
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-store")
        self.send_header("X-Accel-Buffering", "no")
        self.end_headers()
        self.close_connection = True
        watcher = self.server.watcher
        seq = watcher.subscribe()
        try:
            self.wfile.write(f"event: hello\ndata: {json.dumps({'seq': seq})}\n\n".encode())
            self.wfile.flush()
            last_beat = time.monotonic()
            while not watcher.stopped:
                seq, events = watcher.wait(seq, HEARTBEAT_S)
                if events:
                    self.wfile.write(f"event: change\ndata: {json.dumps(events)}\n\n".encode())
                    self.wfile.flush()
                elif time.monotonic() - last_beat >= HEARTBEAT_S:
                    self.wfile.write(b": idle\n\n")
                    self.wfile.flush()
                    last_beat = time.monotonic()
        except (BrokenPipeError, ConnectionResetError, OSError):
            pass
        finally:
            watcher.unsubscribe()


def serve(model: ReadModel, host: str = "127.0.0.1", port: int = 0, token: str | None = None) -> UIServer:
    """A started server (in a thread); `shutdown()` stops it."""
    server = UIServer((host, port), model, token)
    threading.Thread(target=server.serve_forever, name="ui-http", daemon=True).start()
    return server
