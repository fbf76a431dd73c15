"""`ray start --head` / `ray start --address=H:P --block` / `ray status` of the engine-standin image, for the
vLLM Ray scripts our builder writes (serving.ray_leader_script / ray_worker_script). Not Ray: a head process
that counts the nodes that joined it over TCP (heartbeats, a node that goes away is marked dead), and the
`ray` Python package's init()/nodes() reading that count, which is all those scripts use."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time

from llmops_standin import rendezvous
from llmops_standin.rendezvous import _Lines, _send, log

STATE = os.path.join(os.environ.get("LLMOPS_STANDIN_RAY_DIR", "/tmp/ray"), "llmops-standin-head.json")


def read_state():
    try:
        with open(STATE) as handle:
            return json.load(handle)
    except (OSError, ValueError):
        return None


class Head:
    def __init__(self, port):
        self.port = port
        self.lock = threading.Lock()
        self.nodes = [{"NodeID": "head", "Alive": True, "NodeManagerAddress": socket.gethostname()}]
        self.server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.server.bind(("0.0.0.0", port))
        self.server.listen(16)
        self.write()

    def write(self):
        os.makedirs(os.path.dirname(STATE), exist_ok=True)
        with self.lock:
            data = json.dumps({"port": self.port, "pid": os.getpid(), "nodes": self.nodes})
        with open(STATE + ".tmp", "w") as handle:
            handle.write(data)
        os.replace(STATE + ".tmp", STATE)

    def serve(self):
        while True:
            conn, peer = self.server.accept()
            threading.Thread(target=self.node, args=(conn, peer), daemon=True).start()

    def node(self, conn, peer):
        lines = _Lines(conn)
        try:
            hello = lines.read(5.0)
        except (OSError, ConnectionError, ValueError):
            conn.close()
            return
        if not hello or "node" not in hello:
            conn.close()
            return
        entry = {"NodeID": "%s-%d" % (hello["node"], len(self.nodes)), "Alive": True, "NodeManagerAddress": peer[0]}
        with self.lock:
            self.nodes.append(entry)
        self.write()
        log("ray head: node %s joined from %s (%d alive)" % (hello["node"], peer[0], self.alive()))
        last = time.monotonic()
        try:
            _send(conn, {"joined": entry["NodeID"]})
            while True:
                _send(conn, {"ping": 0})
                if lines.read(rendezvous.HEARTBEAT) is not None:
                    last = time.monotonic()
                elif time.monotonic() - last > rendezvous.PEER_LOST_AFTER:
                    raise ConnectionError("no heartbeat")
        except (OSError, ConnectionError, ValueError) as error:
            with self.lock:
                entry["Alive"] = False
            self.write()
            log("ray head: node %s is dead (%s)" % (entry["NodeID"], error))

    def alive(self):
        with self.lock:
            return sum(1 for node in self.nodes if node["Alive"])


def _option(argv, name):
    for position, item in enumerate(argv):
        if item.startswith(name + "="):
            return item.split("=", 1)[1]
        if item == name and position + 1 < len(argv):
            return argv[position + 1]
    return None


def start_head(port):
    os.makedirs(os.path.dirname(STATE), exist_ok=True)
    if read_state() is not None:
        print("ray start --head: a Ray head already runs here (%s)" % STATE, file=sys.stderr)
        return 1
    log_path = os.path.join(os.path.dirname(STATE), "llmops-standin-head.log")
    with open(log_path, "ab") as head_log:
        # the head outlives this command, as Ray's does (`ray stop` ends it); its log: /tmp/ray/*.log
        subprocess.Popen(
            [sys.executable, "-m", "llmops_standin.ray_cli", "_head", str(port)],
            start_new_session=True,
            stdin=subprocess.DEVNULL,
            stdout=head_log,
            stderr=subprocess.STDOUT,
        )
    deadline = time.monotonic() + 20
    while read_state() is None:
        if time.monotonic() > deadline:
            print("ray start --head: the head did not start", file=sys.stderr)
            return 1
        time.sleep(0.1)
    print("llmops-engine-standin: Ray head (a stand-in, not Ray) started on port %d" % port, flush=True)
    return 0


def join(address):
    host, port = rendezvous.split_addr(address)
    try:
        conn = socket.create_connection((host, port), timeout=5)
        lines = _Lines(conn)
        _send(conn, {"node": socket.gethostname()})
        answer = lines.read(10.0)
    except (OSError, ConnectionError, ValueError) as error:
        print("ray start: cannot reach the Ray head at %s: %s" % (address, error), file=sys.stderr, flush=True)
        return 1
    if not answer or "joined" not in answer:
        print("ray start: the head at %s did not take this node" % address, file=sys.stderr, flush=True)
        return 1
    log("ray: joined the head at %s as %s; --block until it goes away" % (address, answer["joined"]))
    last = time.monotonic()
    try:
        while True:
            message = lines.read(rendezvous.HEARTBEAT)
            if message is not None:
                last = time.monotonic()
                _send(conn, {"pong": 0})
            elif time.monotonic() - last > rendezvous.PEER_LOST_AFTER:
                raise ConnectionError("no heartbeat from the head")
    except (OSError, ConnectionError, ValueError) as error:
        log("ray: lost the head at %s (%s); exiting" % (address, error))
        return 1


def main(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    if argv[:1] == ["_head"]:
        head = Head(int(argv[1]))
        log("ray head (stand-in, not Ray) listening on 0.0.0.0:%s" % argv[1])
        head.serve()
        return 0
    if argv[:1] == ["status"]:
        state = read_state()
        if state is None:
            print("No cluster status. (llmops-engine-standin: no Ray head here)", file=sys.stderr)
            return 1
        print("llmops-engine-standin Ray stand-in: %d node(s) alive" % sum(n["Alive"] for n in state["nodes"]))
        return 0
    if argv[:1] == ["stop"]:
        state = read_state()
        if state is not None:
            try:
                os.kill(state["pid"], signal.SIGTERM)
            except OSError:
                pass
            os.remove(STATE)
        return 0
    if argv[:1] == ["start"]:
        if "--head" in argv:
            return start_head(int(_option(argv, "--port") or 6379))
        address = _option(argv, "--address")
        if address:
            return join(address)
    print("llmops-engine-standin: `ray %s` is not stood in for" % " ".join(argv), file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
