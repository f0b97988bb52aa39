"""A TCP proxy in front of the real PostgreSQL server that injects the faults of a real network.

It reads the client's side of the PostgreSQL wire protocol just enough to know which statements
a transaction ran, and can then:

- ``lose_commit_reply(when)``: forward the COMMIT of the next transaction whose statements match
  ``when``, let the server commit it, swallow the server's reply and cut the connection, so the
  client cannot tell whether its transaction landed (the ambiguous commit);
- ``outage(seconds)``: cut every open connection and refuse new ones (the port is closed:
  "Connection refused") for that long, as a server restart or a network cut does;
- ``outage_on(when, seconds)``: the same, the moment a statement matching ``when`` arrives
  (that statement never reaches the server);
- ``cut_while(when, seconds)``: from the first statement matching ``when``, for that long, cut
  any connection that sends such a statement (before it reaches the server), while every other
  statement passes (a write that keeps failing while the heartbeats get through).

Counters (``lost_replies``, ``outages``, ``cut_statements``) show that a
fault fired. The proxy answers the client's SSL and GSS encryption requests with 'N' itself, so
the conversation it reads is plain.
"""

from __future__ import annotations

import socket
import struct
import threading
import time
from collections.abc import Callable

SSL_REQUEST, GSS_REQUEST, CANCEL_REQUEST = 80877103, 80877104, 80877102
Predicate = Callable[[list[str]], bool]


def _read_exactly(sock: socket.socket, size: int) -> bytes | None:
    chunks, left = [], size
    while left:
        try:
            chunk = sock.recv(left)
        except OSError:
            return None
        if not chunk:
            return None
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


def _close(sock: socket.socket) -> None:
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    sock.close()


class _Link:
    """One client connection and its connection to the server."""

    def __init__(self, proxy: FaultProxy, client: socket.socket):
        self.proxy = proxy
        self.client = client
        self.server = socket.create_connection(proxy.target)
        for sock in (client, self.server):  # message by message: Nagle's delay would add 40 ms to each
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.statements: list[str] = []  # of the transaction in progress
        self.prepared: dict[bytes, str] = {}  # statement name → SQL (psycopg prepares repeated queries)
        self.swallow_reply = threading.Event()
        self.closed = False

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            _close(self.client)
            _close(self.server)

    # ------------------------------------------------------------------ client → server
    def pump_client(self) -> None:
        try:
            if not self._startup():
                return
            while True:
                header = _read_exactly(self.client, 5)
                if header is None:
                    return
                kind, length = header[:1], struct.unpack("!I", header[1:])[0]
                body = _read_exactly(self.client, length - 4)
                if body is None:
                    return
                if not self._on_message(kind, body):
                    return
                self.server.sendall(header + body)
        except OSError:
            pass
        finally:
            self.close()

    def _startup(self) -> bool:
        """The untyped start of a connection; answers encryption requests with 'N'."""
        while True:
            head = _read_exactly(self.client, 8)
            if head is None:
                return False
            length, code = struct.unpack("!II", head)
            rest = _read_exactly(self.client, length - 8) if length > 8 else b""
            if rest is None:
                return False
            if code in (SSL_REQUEST, GSS_REQUEST):
                self.client.sendall(b"N")
                continue
            self.server.sendall(head + rest)
            return code != CANCEL_REQUEST

    def _on_message(self, kind: bytes, body: bytes) -> bool:
        """Track the transaction's statements and fire faults; False cuts the connection."""
        sql = None
        if kind == b"Q":
            sql = body.rstrip(b"\0").decode("utf-8", "replace")
        elif kind == b"P":
            name, _, rest = body.partition(b"\0")
            self.prepared[name] = rest.split(b"\0", 1)[0].decode("utf-8", "replace")
        elif kind == b"B":
            _portal, _, rest = body.partition(b"\0")
            sql = self.prepared.get(rest.split(b"\0", 1)[0])
        if sql is None:
            return True
        word = sql.lstrip().split(None, 1)[0].upper() if sql.strip() else ""
        if word == "BEGIN":
            self.statements = []
            return True
        if word in ("COMMIT", "ROLLBACK"):
            statements, self.statements = self.statements, []
            if word == "COMMIT" and self.proxy._take_commit_fault(statements):
                self.swallow_reply.set()  # forwarded; the server's answer is dropped
            return True
        self.statements.append(sql)
        return self.proxy._statement_allowed(self, self.statements)

    # ------------------------------------------------------------------ server → client
    def pump_server(self) -> None:
        try:
            while True:
                header = _read_exactly(self.server, 5)
                if header is None:
                    return
                length = struct.unpack("!I", header[1:])[0]
                body = _read_exactly(self.server, length - 4)
                if body is None:
                    return
                if self.swallow_reply.is_set():
                    if header[:1] == b"Z":  # ReadyForQuery: the COMMIT is done and answered
                        with self.proxy._lock:
                            self.proxy.lost_replies += 1
                        return  # never forwarded; the finally cuts the client off
                    continue
                self.client.sendall(header + body)
        except OSError:
            pass
        finally:
            self.close()


class FaultProxy:
    """Listens on 127.0.0.1:<port> and forwards to ``target`` (the PostgreSQL server)."""

    def __init__(self, target: tuple[str, int]):
        self.target = target
        self.port = 0
        self.lost_replies = 0
        self.outages = 0
        self.cut_statements = 0
        self._lock = threading.Lock()
        self._links: list[_Link] = []
        self._commit_faults: list[Predicate] = []
        self._outage_triggers: list[tuple[Predicate, float]] = []
        self._cut_rules: list[list] = []  # [when, seconds, until (monotonic; None until it first matches)]
        self._listener: socket.socket | None = None
        self._stopped = False
        self._listen()

    # ------------------------------------------------------------------ faults
    def lose_commit_reply(self, when: Predicate) -> None:
        """Arm: the next COMMIT of a transaction whose statements satisfy ``when`` lands on the
        server, and its reply is lost with the connection."""
        with self._lock:
            self._commit_faults.append(when)

    def outage(self, seconds: float | None) -> None:
        """Cut every connection now and refuse new ones for ``seconds`` (None: until
        :meth:`restore`)."""
        with self._lock:
            self.outages += 1
        self._cut_everything()
        if seconds is not None:
            timer = threading.Timer(seconds, self.restore)
            timer.daemon = True
            timer.start()

    def restore(self) -> None:
        """End an outage: accept connections again, on the same port."""
        with self._lock:
            if self._listener is not None:
                return
        self._listen()

    def outage_on(self, when: Predicate, seconds: float) -> None:
        """Arm: the moment a statement makes a transaction satisfy ``when``, an outage of
        ``seconds`` begins (and that statement never reaches the server)."""
        with self._lock:
            self._outage_triggers.append((when, seconds))

    def cut_while(self, when: Predicate, seconds: float) -> None:
        """Arm: from the first statement that makes a transaction satisfy ``when``, and for
        ``seconds``, cut every connection that does so, before the statement reaches the
        server; all else passes."""
        with self._lock:
            self._cut_rules.append([when, seconds, None])

    @staticmethod
    def ran(fragment: str) -> Predicate:
        """A predicate: some statement of the transaction contains ``fragment``."""
        return lambda statements: any(fragment in sql for sql in statements)

    # ------------------------------------------------------------------ plumbing
    def url(self, database_url: str) -> str:
        """``database_url`` (a postgresql:// URL of the real server) through this proxy."""
        host_port = f"{self.target[0]}:{self.target[1]}"
        assert host_port in database_url, database_url
        return database_url.replace(host_port, f"127.0.0.1:{self.port}")

    def close(self) -> None:
        self._stopped = True
        self._cut_everything()

    def _cut_everything(self) -> None:
        """Close the listening port and every connection through it."""
        with self._lock:
            links, self._links = self._links, []
            listener, self._listener = self._listener, None
        if listener is not None:
            _close(listener)
        for link in links:
            link.close()

    def _listen(self) -> None:
        if self._stopped:
            return
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        self.port = listener.getsockname()[1]
        with self._lock:
            self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return  # closed: an outage or the end
            try:
                link = _Link(self, client)
            except OSError:
                _close(client)
                continue
            with self._lock:
                self._links.append(link)
            threading.Thread(target=link.pump_client, daemon=True).start()
            threading.Thread(target=link.pump_server, daemon=True).start()

    def _take_commit_fault(self, statements: list[str]) -> bool:
        with self._lock:
            for index, when in enumerate(self._commit_faults):
                if when(statements):
                    del self._commit_faults[index]
                    return True
        return False

    def _statement_allowed(self, link: _Link, statements: list[str]) -> bool:
        now = time.monotonic()
        with self._lock:
            for index, (when, trigger_seconds) in enumerate(self._outage_triggers):
                if when(statements):
                    del self._outage_triggers[index]
                    seconds = trigger_seconds
                    break
            else:
                seconds = None
            cut = False
            for rule in self._cut_rules:
                when, seconds_cut, until = rule
                if (until is None or now < until) and when(statements):
                    rule[2] = now + seconds_cut if until is None else until
                    cut = True
            if cut:
                self.cut_statements += 1
        if seconds is not None:
            self.outage(seconds)
            return False
        return not cut
