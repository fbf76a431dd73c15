"""A real rendezvous of `nnodes` processes over TCP, shaped like the engines' (torch.distributed TCPStore at
--dist-init-addr, vLLM's data-parallel RPC address): rank 0 listens on the address's port, the other ranks
connect (retrying until the timeout) and register their rank. The group forms when every rank is in; after
that each side watches the other (heartbeats every second): a lost peer ends the process non-zero, as a real
engine crashes when an NCCL peer goes away."""

from __future__ import annotations

import json
import socket
import threading
import time

HEARTBEAT = 1.0
PEER_LOST_AFTER = 6.0


def log(message):
    print("[llmops-engine-standin] %s" % message, flush=True)


class GroupFailed(Exception):
    pass


def split_addr(addr):
    host, sep, port = str(addr).rpartition(":")
    if not sep or not port.isdigit():
        raise GroupFailed("dist-init address %r is not host:port" % addr)
    return host.strip("[]"), int(port)


def _send(sock, message):
    sock.sendall((json.dumps(message) + "\n").encode())


class _Lines:
    def __init__(self, sock):
        self.sock = sock
        self.buffer = b""

    def read(self, timeout):
        """The next JSON message, None on timeout; raises ConnectionError when the peer closed."""
        self.sock.settimeout(timeout)
        while b"\n" not in self.buffer:
            try:
                chunk = self.sock.recv(4096)
            except socket.timeout:
                return None
            if not chunk:
                raise ConnectionError("connection closed")
            self.buffer += chunk
        line, self.buffer = self.buffer.split(b"\n", 1)
        return json.loads(line)


class Leader:
    """Rank 0: accepts ranks 1..nnodes-1 on ``port`` until all are in or ``timeout`` seconds pass."""

    def __init__(self, host, port, nnodes, timeout, identity):
        self.host, self.port, self.nnodes, self.timeout, self.identity = host, port, nnodes, timeout, identity
        self.peers = {}
        self.lost = threading.Event()
        self.lost_reason = ""
        self.server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.server.bind(("0.0.0.0", port))
        self.server.listen(16)

    def form(self):
        started = time.monotonic()
        deadline = started + self.timeout
        last_note = 0.0
        log(
            "rank 0 of %d: waiting for ranks %s at 0.0.0.0:%d (dist-init-addr %s:%d, timeout %ds)"
            % (self.nnodes, list(range(1, self.nnodes)), self.port, self.host, self.port, self.timeout)
        )
        while len(self.peers) < self.nnodes - 1:
            now = time.monotonic()
            if now > deadline:
                missing = [rank for rank in range(1, self.nnodes) if rank not in self.peers]
                raise GroupFailed(
                    "the group did not form within --dist-timeout %ds: %d of %d ranks registered at 0.0.0.0:%d, "
                    "never heard from rank(s) %s (is every node's --dist-init-addr %s:%d, and its --node-rank "
                    "unique in 1..%d?)"
                    % (
                        self.timeout,
                        len(self.peers) + 1,
                        self.nnodes,
                        self.port,
                        missing,
                        self.host,
                        self.port,
                        self.nnodes - 1,
                    )
                )
            if now - last_note > 10:
                missing = [rank for rank in range(1, self.nnodes) if rank not in self.peers]
                log("rendezvous: %d of %d ranks in, waiting for %s" % (len(self.peers) + 1, self.nnodes, missing))
                last_note = now
            self.server.settimeout(1.0)
            try:
                conn, peer = self.server.accept()
            except socket.timeout:
                continue
            self._register(conn, peer)
        elapsed = time.monotonic() - started
        for _rank, (conn, _lines) in sorted(self.peers.items()):
            _send(conn, {"formed": True, "nnodes": self.nnodes})
        log("group formed: %d of %d ranks in %.1fs" % (self.nnodes, self.nnodes, elapsed))
        for rank in sorted(self.peers):
            threading.Thread(target=self._watch, args=(rank,), daemon=True).start()
        return elapsed

    def _register(self, conn, peer):
        lines = _Lines(conn)
        try:
            hello = lines.read(5.0)
        except (ConnectionError, ValueError):
            conn.close()
            return
        if not hello:
            conn.close()
            return
        rank, nnodes = hello.get("rank"), hello.get("nnodes")
        error = None
        if nnodes != self.nnodes:
            error = "rank %s from %s says nnodes %s, the leader has %d" % (rank, peer[0], nnodes, self.nnodes)
        elif not isinstance(rank, int) or not 1 <= rank < self.nnodes:
            error = "rank %s from %s is out of range 1..%d" % (rank, peer[0], self.nnodes - 1)
        elif rank in self.peers:
            error = "rank %d registered twice (again from %s)" % (rank, peer[0])
        elif hello.get("identity") != self.identity:
            error = "rank %d from %s runs %s, the leader runs %s" % (
                rank,
                peer[0],
                hello.get("identity"),
                self.identity,
            )
        if error:
            log("refused a peer: " + error)
            try:
                _send(conn, {"error": error})
            except OSError:
                pass
            conn.close()
            return
        _send(conn, {"registered": rank})
        self.peers[rank] = (conn, lines)
        log("rank %d registered from %s" % (rank, peer[0]))

    def _watch(self, rank):
        conn, lines = self.peers[rank]
        last = time.monotonic()
        try:
            while not self.lost.is_set():
                _send(conn, {"ping": 0})
                message = lines.read(HEARTBEAT)
                if message is not None:
                    last = time.monotonic()
                elif time.monotonic() - last > PEER_LOST_AFTER:
                    raise ConnectionError("no heartbeat for %.0fs" % PEER_LOST_AFTER)
        except (OSError, ConnectionError, ValueError) as error:
            self.lost_reason = "lost rank %d (%s)" % (rank, error)
            self.lost.set()

    def close(self):
        for conn, _lines in self.peers.values():
            conn.close()
        self.server.close()


class Worker:
    """Rank >= 1: connects to the leader (retrying until the timeout), registers, waits for the group."""

    def __init__(self, host, port, nnodes, rank, timeout, identity):
        self.host, self.port, self.nnodes, self.rank, self.timeout = host, port, nnodes, rank, timeout
        self.identity = identity
        self.conn = None
        self.lines = None

    def join(self):
        started = time.monotonic()
        deadline = started + self.timeout
        last_error = None
        last_note = 0.0
        while True:
            now = time.monotonic()
            if now > deadline:
                raise GroupFailed(
                    "rank %d could not join the leader at %s:%d within --dist-timeout %ds: %s"
                    % (self.rank, self.host, self.port, self.timeout, last_error)
                )
            try:
                conn = socket.create_connection((self.host, self.port), timeout=3)
                lines = _Lines(conn)
                _send(conn, {"rank": self.rank, "nnodes": self.nnodes, "identity": self.identity})
                answer = lines.read(10.0)
                if answer is None:
                    raise OSError("the leader did not answer the registration")
                if "error" in answer:
                    raise GroupFailed("the leader refused rank %d: %s" % (self.rank, answer["error"]))
                break
            except OSError as error:
                last_error = "%s" % (error.strerror or error)
                if now - last_note > 10:
                    log(
                        "rank %d: cannot reach the leader at %s:%d (%s); retrying until --dist-timeout"
                        % (self.rank, self.host, self.port, last_error)
                    )
                    last_note = now
                time.sleep(1.0)
        log("rank %d registered at %s:%d; waiting for the whole group" % (self.rank, self.host, self.port))
        while True:
            message = lines.read(max(1.0, deadline - time.monotonic()))
            if message is None and time.monotonic() > deadline:
                raise GroupFailed("rank %d: the group did not form within --dist-timeout" % self.rank)
            if message and message.get("formed"):
                break
        self.conn, self.lines = conn, lines
        elapsed = time.monotonic() - started
        log("group formed: rank %d of %d in %.1fs" % (self.rank, self.nnodes, elapsed))
        return elapsed

    def watch(self, stop):
        """Blocks while the leader is alive; returns why it went away (or None when ``stop`` was set)."""
        last = time.monotonic()
        while not stop.is_set():
            try:
                message = self.lines.read(HEARTBEAT)
                if message is not None:
                    last = time.monotonic()
                    _send(self.conn, {"pong": 0})
                elif time.monotonic() - last > PEER_LOST_AFTER:
                    return "no heartbeat from the leader for %.0fs" % PEER_LOST_AFTER
            except (OSError, ConnectionError, ValueError) as error:
                return "lost the leader (%s)" % error
        return None
