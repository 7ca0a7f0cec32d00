"""Runs real raftmqd processes on 127.0.0.1 for the cluster tests.

Each node gets random free ports (client, raft, HTTP) and its own temporary
data dir; its log goes to <data dir>.log, printed when a test fails. The
binary is $RAFTMQD (meson sets it), else build/plain/node/raftmqd.
"""
import json
import os
import shutil
import signal
import sys
import socket
import subprocess
import tempfile
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))


def raftmqd_path():
    p = os.environ.get("RAFTMQD")
    if p:
        return p
    for d in ("build/plain", "build/dev", "build/node"):
        c = os.path.join(ROOT, d, "node", "raftmqd")
        if os.path.exists(c):
            return c
    raise RuntimeError("raftmqd not found: build it or set RAFTMQD")


_taken = set()


def free_port():
    """A TCP port free right now on 127.0.0.1 (not handed out twice)."""
    while True:
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        s.close()
        if port not in _taken:
            _taken.add(port)
            return port


class Node:
    def __init__(self, cluster, node_id):
        self.cluster = cluster
        self.id = node_id
        self.client_port = free_port()
        self.raft_port = free_port()
        self.http_port = free_port()
        self.data_dir = os.path.join(cluster.dir, "node%d" % node_id)
        self.log_path = self.data_dir + ".log"
        self.proc = None
        self.extra = []

    @property
    def client_address(self):
        return "127.0.0.1:%d" % self.client_port

    @property
    def raft_address(self):
        return "127.0.0.1:%d" % self.raft_port

    def member(self):
        return "%d@%s@%s" % (self.id, self.raft_address, self.client_address)

    def start(self, members=None):
        if members is None:
            # Initial members bootstrap from the list; a node added later
            # joins with none (raftmq cluster add).
            members = (self.cluster.members()
                       if self in self.cluster.initial else "")
        args = [raftmqd_path(), "--id", str(self.id),
                "--data-dir", self.data_dir,
                "--raft-address", self.raft_address,
                "--client-address", self.client_address,
                "--http-address", "127.0.0.1:%d" % self.http_port,
                "--log-level", "debug"]
        if members:
            args += ["--members", members]
        args += self.cluster.extra + self.extra
        log = open(self.log_path, "ab")
        env = dict(os.environ)
        # Under ASan a deliberate kill -9 must not be reported as a leak.
        env.setdefault("ASAN_OPTIONS", "detect_leaks=0")
        self.proc = subprocess.Popen(args, stdout=log, stderr=log,
                                     stdin=subprocess.DEVNULL, env=env)
        log.close()
        return self

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def kill(self, sig=signal.SIGKILL):
        if self.alive():
            self.proc.send_signal(sig)
            self.proc.wait(timeout=30)

    def stop(self, timeout=10):
        """SIGTERM and wait; returns the exit code."""
        if not self.alive():
            return self.proc.returncode if self.proc else None
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=timeout)

    def pause(self):
        self.proc.send_signal(signal.SIGSTOP)

    def resume(self):
        self.proc.send_signal(signal.SIGCONT)

    def http(self, path, timeout=2.0):
        url = "http://127.0.0.1:%d%s" % (self.http_port, path)
        try:
            with urllib.request.urlopen(url, timeout=timeout) as r:
                return r.status, r.read().decode()
        except urllib.error.HTTPError as e:
            return e.code, e.read().decode()

    def metric(self, name):
        """The value of metric `name` (no labels) in /metrics, as a float;
        KeyError when the node does not report it."""
        code, text = self.http("/metrics")
        assert code == 200, (code, text[:200])
        for line in text.splitlines():
            if line.startswith(name + " "):
                return float(line.split()[1])
        raise KeyError(name)

    def status(self, digest=False):
        code, body = self.http("/v1/status" + ("?digest=1" if digest else ""))
        return json.loads(body)

    def log(self):
        try:
            with open(self.log_path, "rb") as f:
                return f.read().decode(errors="replace")
        except OSError:
            return ""


class Cluster:
    def __init__(self, n=3, extra=None):
        self.dir = tempfile.mkdtemp(prefix="raftmq-test-")
        self.extra = list(extra or [])
        self.nodes = [Node(self, i + 1) for i in range(n)]
        self.initial = list(self.nodes)

    def members(self):
        return ",".join(n.member() for n in self.initial)

    def addresses(self, nodes=None):
        return ",".join(n.client_address for n in (nodes or self.nodes))

    def node(self, node_id):
        return next(n for n in self.nodes if n.id == node_id)

    def start(self):
        for n in self.nodes:
            n.start()
        return self.wait_ready()

    def live(self):
        return [n for n in self.nodes if n.alive()]

    def statuses(self):
        out = {}
        for n in self.live():
            try:
                out[n.id] = n.status()
            except (OSError, ValueError):
                pass
        return out

    def leader(self):
        """The node that says it leads (and that its peers agree on)."""
        for nid, s in self.statuses().items():
            if s["state"] == "leader":
                return self.node(nid)
        return None

    def wait_leader(self, timeout=10.0, exclude=()):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            lead = self.leader()
            if lead is not None and lead.id not in exclude:
                return lead
            time.sleep(0.02)
        raise AssertionError("no leader within %.1f s" % timeout)

    def wait_ready(self, timeout=15.0, nodes=None):
        deadline = time.monotonic() + timeout
        nodes = nodes or self.live()
        while time.monotonic() < deadline:
            try:
                if all(n.http("/healthz/ready")[0] == 200 for n in nodes):
                    return self.wait_leader(timeout)
            except OSError:
                pass
            time.sleep(0.05)
        raise AssertionError("cluster not ready within %.1f s" % timeout)

    def wait_converged(self, timeout=15.0, nodes=None):
        """Waits until the live nodes report the same applied index and the
        same state digest; returns the digest."""
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            try:
                st = [n.status(digest=True) for n in (nodes or self.live())]
            except (OSError, ValueError):
                time.sleep(0.1)
                continue
            last = [(s["node_id"], s["applied_index"], s["state_digest"])
                    for s in st]
            if len({(a, d) for _, a, d in last}) == 1:
                return last[0][2]
            time.sleep(0.1)
        raise AssertionError("replicas did not converge: %s" % last)

    def stop(self):
        for n in self.nodes:
            if n.alive():
                try:
                    n.resume()
                except OSError:
                    pass
                n.kill()

    def logs(self):
        return "\n".join("==== node %d ====\n%s" % (n.id, n.log()[-20000:])
                         for n in self.nodes)

    def cleanup(self):
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)

    def crashes(self):
        """Nodes that died on their own (not killed by the test)."""
        return ["node %d (exit %s)" % (n.id, n.proc.returncode)
                for n in self.nodes
                if n.proc is not None and n.proc.poll() is not None and
                n.proc.returncode not in (0, -signal.SIGKILL,
                                          -signal.SIGTERM)]


def serve(cluster):
    """For a pytest fixture (`yield from serve(Cluster(3))`): starts the
    cluster and yields it; prints its logs if starting failed or a node
    died; cleans up, then fails if a node died on its own."""
    try:
        cluster.start()
        yield cluster
    except BaseException:
        sys.stderr.write(cluster.logs())
        raise
    finally:
        crashed = cluster.crashes()
        if crashed:
            sys.stderr.write(cluster.logs())
        cluster.cleanup()
        assert not crashed, "nodes crashed on their own: %s" % crashed
