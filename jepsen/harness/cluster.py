"""raftmqd nodes, one per network namespace (see net.py for the network).

Node i (1-based slot) always lives in namespace rmqj-n<i> with address
10.77.0.<10+i>; ports are the same in every namespace (client 7001, Raft
7101, HTTP 7201). A slot's Raft id starts as i and changes when the
membership nemesis removes the node and adds it back: the docs forbid
reusing an id after a removal, so the node returns with a fresh id and an
empty data dir (docs/operations.md, "Adding, removing and replacing a
node").

Every node's output goes to <store>/node<i>.log (appended across restarts,
with a marker line per start), which the report links and bug reports keep.
"""
import json
import os
import resource
import shutil
import signal
import subprocess
import time
import urllib.error
import urllib.request

from . import net

CLIENT_PORT, RAFT_PORT, HTTP_PORT = 7001, 7101, 7201


def allow_core_dumps():
    """In the child before exec: a crashing node leaves a core where the
    machine's core_pattern says, for crash_backtrace()."""
    resource.setrlimit(resource.RLIMIT_CORE,
                       (resource.RLIM_INFINITY, resource.RLIM_INFINITY))


def core_path(pid):
    """Where the kernel wrote raftmqd's core for `pid`, if core_pattern is
    a plain path template (%e, %p); None otherwise."""
    try:
        with open("/proc/sys/kernel/core_pattern") as f:
            pat = f.read().strip()
    except OSError:
        return None
    if pat.startswith("|"):
        return None
    path = pat.replace("%e", "raftmqd").replace("%p", str(pid))
    if "%" in path:
        return None
    return path if os.path.isabs(path) else None


def crash_backtrace(binary, pid, dest_dir):
    """Moves the core of a crashed node into dest_dir and writes gdb's
    backtrace of every thread next to it; returns the text file's path or
    None when there is no core (or no gdb)."""
    core = core_path(pid)
    if not core or not os.path.exists(core) or not shutil.which("gdb"):
        return None
    os.makedirs(dest_dir, exist_ok=True)
    kept = os.path.join(dest_dir, os.path.basename(core))
    shutil.move(core, kept)
    r = subprocess.run(["gdb", "-batch", "-nx", "-ex", "thread apply all bt",
                        binary, kept], stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, text=True, timeout=120)
    out = os.path.join(os.path.dirname(dest_dir), "crash-%d.txt" % pid)
    with open(out, "w") as f:
        f.write("core: %s\n\n%s" % (kept, r.stdout))
    return out


def hang_report(node):
    """What a node that stopped answering is doing: process state, kernel
    wait channel and stack, gdb's backtrace of every thread (gdb attaches
    for a moment), and the sockets of its namespace. Returns the text."""
    pid = node.proc.pid
    out = ["node %s (raft id %d), pid %d" % (node.name, node.raft_id, pid)]
    for f in ("status", "wchan", "stack"):
        try:
            with open("/proc/%d/%s" % (pid, f)) as fh:
                out.append("---- /proc/%d/%s\n%s" % (pid, f, fh.read()))
        except OSError as e:
            out.append("---- /proc/%d/%s: %s" % (pid, f, e))
    cmds = [["ip", "netns", "exec", node.ns, "ss", "-tanpo"]]
    if shutil.which("gdb"):
        cmds.append(["gdb", "-batch", "-nx", "-p", str(pid), "-ex",
                     "thread apply all bt"])
    for cmd in cmds:
        try:
            r = subprocess.run(cmd, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True,
                               timeout=120)
            out.append("---- %s\n%s" % (" ".join(cmd), r.stdout))
        except (OSError, subprocess.TimeoutExpired) as e:
            out.append("---- %s: %s" % (" ".join(cmd), e))
    return "\n".join(out)


class Node:
    def __init__(self, cluster, slot):
        self.cluster = cluster
        self.slot = slot
        self.name = "n%d" % slot
        self.raft_id = slot
        self.ns = net.ns_name(slot)
        self.ip = net.node_address(slot)
        self.proc = None
        self.paused = False
        self.removed = False       # not a member (membership nemesis)
        self.expected_exit = True  # false while it should be running
        self.crashes = []          # exits nobody asked for: (time, code)
        self.log_path = os.path.join(cluster.store, "node%d.log" % slot)

    @property
    def client_address(self):
        return "%s:%d" % (self.ip, CLIENT_PORT)

    @property
    def raft_address(self):
        return "%s:%d" % (self.ip, RAFT_PORT)

    @property
    def data_dir(self):
        return os.path.join(self.cluster.store, "data", "%s-id%d"
                            % (self.name, self.raft_id))

    def member(self):
        return "%d@%s@%s" % (self.raft_id, self.raft_address,
                             self.client_address)

    def start(self, members):
        """Starts raftmqd in the node's namespace (members="" = join)."""
        self.check_exit()
        os.makedirs(self.data_dir, exist_ok=True)
        args = ["ip", "netns", "exec", self.ns, self.cluster.binary,
                "--id", str(self.raft_id), "--data-dir", self.data_dir,
                "--raft-address", self.raft_address,
                "--client-address", self.client_address,
                "--http-address", "%s:%d" % (self.ip, HTTP_PORT),
                "--log-level", "debug"] + self.cluster.extra
        if members:
            args += ["--members", members]
        with open(self.log_path, "ab") as log:
            log.write(("==== jepsen: start %s id %d at %s\n" % (
                self.name, self.raft_id, time.strftime("%H:%M:%S"))).encode())
            log.flush()
            # `ip netns exec` execs raftmqd, so the pid is raftmqd's.
            self.proc = subprocess.Popen(args, stdout=log, stderr=log,
                                         stdin=subprocess.DEVNULL,
                                         preexec_fn=allow_core_dumps)
        self.paused = False
        self.expected_exit = False

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def check_exit(self):
        """Records an exit nobody caused (a crash) once."""
        if self.proc is not None and not self.expected_exit and \
                self.proc.poll() is not None:
            self.crashes.append((time.time(), self.proc.returncode,
                                 self.proc.pid))
            self.expected_exit = True
            return True
        return False

    def signal(self, sig):
        if self.alive():
            self.proc.send_signal(sig)

    def kill(self):
        """kill -9; also works on a paused process."""
        self.check_exit()
        self.expected_exit = True
        if self.alive():
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=30)
        self.paused = False

    def stop(self, timeout=15):
        """SIGTERM (a leader hands over first), then SIGKILL if stuck."""
        self.check_exit()
        self.expected_exit = True
        if not self.alive():
            return None
        if self.paused:
            self.proc.send_signal(signal.SIGCONT)
            self.paused = False
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.send_signal(signal.SIGKILL)
            return self.proc.wait(timeout=30)

    def pause(self):
        if self.alive():
            self.proc.send_signal(signal.SIGSTOP)
            self.paused = True

    def resume(self):
        if self.alive() and self.paused:
            self.proc.send_signal(signal.SIGCONT)
        self.paused = False

    def http(self, path, timeout=1.0):
        url = "http://%s:%d%s" % (self.ip, HTTP_PORT, path)
        try:
            with urllib.request.urlopen(url, timeout=timeout) as r:
                return r.status, r.read().decode()
        except urllib.error.HTTPError as e:
            return e.code, e.read().decode()

    def status(self, timeout=1.0):
        """/v1/status as a dict, or None when the node does not answer."""
        if not self.alive() or self.paused:
            return None
        try:
            code, body = self.http("/v1/status", timeout)
            return json.loads(body) if code == 200 else None
        except (OSError, ValueError):
            return None

    def live(self, timeout=2.0):
        """Does the node's event loop answer at all (/healthz/live)?"""
        if not self.alive() or self.paused:
            return False
        try:
            return self.http("/healthz/live", timeout)[0] == 200
        except OSError:
            return False

    def ready(self, timeout=1.0):
        if not self.alive() or self.paused:
            return False
        try:
            return self.http("/healthz/ready", timeout)[0] == 200
        except OSError:
            return False


class Cluster:
    def __init__(self, store, binary, n=5, extra=None):
        self.store = store
        self.binary = binary
        self.extra = list(extra or [])
        self.next_id = n + 1
        self.first_joined_id = n + 1
        self.nodes = [Node(self, i) for i in range(1, n + 1)]

    def members(self):
        return ",".join(x.member() for x in self.nodes if not x.removed)

    def addresses(self):
        """Every slot's client address (also removed ones: clients must
        cope with a node that refuses or does not answer)."""
        return [x.client_address for x in self.nodes]

    def by_address(self, address):
        for x in self.nodes:
            if x.client_address == address:
                return x
        return None

    def start(self):
        m = self.members()
        for x in self.nodes:
            x.start(m)

    def restart(self, node):
        """Starts a stopped member again with its data. Only the initial
        members get the members list: a node that joined later must never
        bootstrap a cluster of its own if its data dir were still empty."""
        node.start(self.members() if node.raft_id < self.first_joined_id
                   else "")

    def leader(self):
        """The node that says it leads, or None (paused or partitioned
        nodes may still claim it: callers treat it as a hint)."""
        best = None
        for x in self.nodes:
            s = x.status()
            if s and s.get("state") == "leader":
                if best is None or s.get("term", 0) > best[1]:
                    best = (x, s.get("term", 0))
        return best[0] if best else None

    def wait_healthy(self, timeout):
        """Waits until every member runs, is ready, and they agree on one
        leader; returns the seconds it took or None on timeout."""
        t0 = time.monotonic()
        while time.monotonic() - t0 < timeout:
            members = [x for x in self.nodes if not x.removed]
            sts = [x.status() for x in members]
            if all(x.ready() for x in members) and all(sts):
                leaders = {s.get("leader_id") for s in sts}
                if len(leaders) == 1 and 0 not in leaders and \
                        None not in leaders:
                    return time.monotonic() - t0
            time.sleep(0.25)
        return None

    def wait_live(self, nodes, count, timeout):
        """Waits until `count` of `nodes` answer /healthz/live (their event
        loop runs: started and loaded); False on timeout."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if sum(1 for x in nodes if x.live(timeout=0.5)) >= count:
                return True
            time.sleep(0.05)
        return False

    def check_crashes(self):
        return [x for x in self.nodes if x.check_exit()]

    def shutdown(self):
        for x in self.nodes:
            x.resume()
            x.kill()

    def wipe(self, node):
        shutil.rmtree(node.data_dir, ignore_errors=True)
