"""Nemeses: the faults, and the schedule that injects them.

Each fault has start() and stop(); both return a JSON-able description that
goes into the history (process "nemesis", type info, f "start"/"stop",
"fault" = the fault's name). Only one fault is active at a time; `mix`
picks a random one per cycle. The schedule alternates a quiet period with a
fault window until told to stop, then heals the active fault. `heal_all`
brings everything back (used at the end and after a harness error).

Partitions drop packets (iptables in the receiver's namespace, net.py), so
TCP connections between cut nodes hang rather than reset: what a real
network failure looks like.
"""
import random
import signal
import threading
import time

import raftmq
from raftmq import ConnectionLost, Error
from raftmq.client import pb

from . import net


class Context:
    """What faults act on: the cluster, a seeded rng, a lock that
    serializes process control (nemesis vs the crash monitor), a log."""

    def __init__(self, cluster, rng, log):
        self.cluster = cluster
        self.rng = rng
        self.log = log
        self.lock = threading.RLock()
        # Not the seeded rng: how often admin calls retry depends on timing,
        # and must not shift the seeded choice of faults.
        self.admin_rng = random.Random()

    def members(self):
        return [x for x in self.cluster.nodes if not x.removed]

    def admin(self, exclude=()):
        # A random order per call: one node that cannot help (cut off, or
        # removed) must not be the one every administrative call asks.
        skip = {x.client_address for x in exclude}
        addrs = [a for a in self.cluster.addresses() if a not in skip]
        self.admin_rng.shuffle(addrs)
        return raftmq.Client(addrs, timeout=10.0, name="jepsen-nemesis")


# ---------------------------------------------------------------- partitions

def apply_grudge(ctx, grudge):
    """grudge: {receiver slot: [sender slots it must not hear]}."""
    net.heal(len(ctx.cluster.nodes))
    for receiver, senders in grudge.items():
        for s in senders:
            net.drop(receiver, s)


def _halves(ctx):
    slots = [x.slot for x in ctx.cluster.nodes]
    ctx.rng.shuffle(slots)
    k = len(slots) // 2
    return sorted(slots[:k]), sorted(slots[k:])


class PartitionHalves:
    name = "partition-halves"

    def start(self, ctx):
        a, b = _halves(ctx)
        grudge = {x: b for x in a}
        grudge.update({x: a for x in b})
        apply_grudge(ctx, grudge)
        return {"minority": a, "majority": b}

    def stop(self, ctx):
        net.heal(len(ctx.cluster.nodes))
        return {"healed": True}


class PartitionOneWay:
    """Random halves, cut in one direction only: the majority stops hearing
    the minority, while the minority still hears the majority."""
    name = "partition-oneway"

    def start(self, ctx):
        a, b = _halves(ctx)
        apply_grudge(ctx, {x: a for x in b})
        return {"deaf": b, "unheard": a}

    stop = PartitionHalves.stop


class PartitionLeader:
    name = "partition-leader"

    def start(self, ctx):
        lead = ctx.cluster.leader()
        node = lead or ctx.rng.choice(ctx.cluster.nodes)
        others = [x.slot for x in ctx.cluster.nodes if x is not node]
        grudge = {x: [node.slot] for x in others}
        grudge[node.slot] = others
        apply_grudge(ctx, grudge)
        return {"isolated": node.name, "was_leader": lead is not None}

    stop = PartitionHalves.stop


class PartitionRing:
    """Majorities ring (Jepsen's partition-majorities-ring): nodes in a
    random ring each hear only their two neighbours, so every node sees a
    majority (with 5 nodes: itself + 2) but no two see the same one."""
    name = "partition-ring"

    def start(self, ctx):
        slots = [x.slot for x in ctx.cluster.nodes]
        ctx.rng.shuffle(slots)
        n = len(slots)
        grudge = {}
        for i, s in enumerate(slots):
            near = {slots[(i - 1) % n], slots[(i + 1) % n], s}
            grudge[s] = sorted(set(slots) - near)
        apply_grudge(ctx, grudge)
        return {"ring": slots}

    stop = PartitionHalves.stop


# ------------------------------------------------------------- processes

class Kill:
    """kill -9 one node (a random one, or the leader), restart it at stop."""

    def __init__(self, leader=False):
        self.leader = leader
        self.name = "kill-leader" if leader else "kill"
        self.victims = []

    def start(self, ctx):
        lead = ctx.cluster.leader() if self.leader else None
        live = [x for x in ctx.members() if x.alive()]
        node = lead or ctx.rng.choice(live)
        node.kill()
        self.victims = [node]
        return {"killed": node.name, "was_leader": lead is not None}

    def stop(self, ctx):
        for node in self.victims:
            if not node.alive() and not node.removed:
                ctx.cluster.restart(node)
        names = [x.name for x in self.victims]
        self.victims = []
        return {"restarted": names}


class CrashAll:
    name = "crash-all"

    def start(self, ctx):
        # SIGKILL every node as close together as we can: the whole
        # cluster loses power at once.
        nodes = [x for x in ctx.members() if x.alive()]
        for x in nodes:
            x.expected_exit = True
            x.proc.send_signal(signal.SIGKILL)
        for x in nodes:
            x.kill()
        return {"killed": [x.name for x in nodes]}

    def stop(self, ctx):
        names = []
        for x in ctx.members():
            if not x.alive():
                ctx.cluster.restart(x)
                names.append(x.name)
        return {"restarted": names}


class Pause:
    """SIGSTOP a node (random or the leader; alternating), SIGCONT at stop."""
    name = "pause"

    def __init__(self):
        self.victim = None
        self.turn = 0

    def start(self, ctx):
        self.turn += 1
        lead = ctx.cluster.leader() if self.turn % 2 else None
        live = [x for x in ctx.members() if x.alive()]
        node = lead or ctx.rng.choice(live)
        node.pause()
        self.victim = node
        return {"paused": node.name, "was_leader": lead is not None}

    def stop(self, ctx):
        node, self.victim = self.victim, None
        if node:
            node.resume()
        return {"resumed": node.name if node else None}


# ------------------------------------------------------------ membership

def config_ids(ctx, exclude=(), timeout=20.0):
    """Raft ids -> roles of the current configuration, as a node that
    knows a leader reports it. `exclude`: nodes not to ask (a node being
    removed keeps its old view and never learns a leader again)."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            c = ctx.admin(exclude)
            try:
                st = c.cluster_status()
                if st.leader_id:
                    return {n.id: n.role for n in st.nodes}
                last = "node %d knows no leader" % st.node_id
            finally:
                c.close()
        except (ConnectionLost, Error) as e:
            last = e
        time.sleep(0.5)
    raise RuntimeError("no cluster status: %s" % last)


def _admin_call(ctx, fn, done, exclude=(), timeout=30.0):
    """Calls fn(client) until done() says the change is visible. Returns
    (ok, error text)."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            if done():
                return True, None
        except RuntimeError as e:
            last = str(e)
        try:
            c = ctx.admin(exclude)
            try:
                fn(c)
            finally:
                c.close()
        except (ConnectionLost, Error) as e:
            last = str(e)
        time.sleep(1.0)
    return False, last


class Membership:
    """Removes a follower from the configuration (then stops it and deletes
    its data), and at stop adds the same slot back as a new member: fresh
    Raft id, empty data dir, started without members (join), then
    cluster_add. docs/operations.md forbids bringing a node back under its
    old id with an empty data dir, so the id changes every time.

    The node being removed is never asked anything: once the removal is
    committed it hears from no leader again and answers every request with
    NOT_LEADER and no leader address, forever."""
    name = "membership"

    def __init__(self):
        self.removed = None

    def start(self, ctx):
        lead = ctx.cluster.leader()
        cands = [x for x in ctx.members() if x is not lead and x.alive()]
        if not cands:
            return {"skipped": "no follower"}
        node = ctx.rng.choice(cands)
        rid = node.raft_id
        ok, err = _admin_call(
            ctx, lambda c: c.cluster_remove(rid),
            lambda: rid not in config_ids(ctx, exclude=[node]),
            exclude=[node])
        if not ok:
            # Unknown whether the removal committed: leave the node running.
            # If it did, heal_all finds the id gone and re-adds the slot.
            return {"remove_failed": node.name, "id": rid, "error": err}
        node.stop()
        ctx.cluster.wipe(node)
        node.removed = True
        self.removed = node
        return {"removed": node.name, "id": rid}

    def stop(self, ctx):
        node, self.removed = self.removed, None
        if node is None:
            return {"added": None}
        node.raft_id = ctx.cluster.next_id
        ctx.cluster.next_id += 1
        ctx.cluster.wipe(node)
        node.start("")
        ok, err = _admin_call(
            ctx, lambda c: c.cluster_add(node.raft_id, node.raft_address,
                                         node.client_address),
            lambda: config_ids(ctx, exclude=[node]).get(node.raft_id)
            == pb.NODE_ROLE_VOTER,
            exclude=[node], timeout=60.0)
        node.removed = False
        return {"added": node.name, "id": node.raft_id, "ok": ok,
                "error": err}


# ------------------------------------------------------------ registry

def make(name):
    table = {
        "partition-halves": PartitionHalves,
        "partition-oneway": PartitionOneWay,
        "partition-leader": PartitionLeader,
        "partition-ring": PartitionRing,
        "kill": lambda: Kill(False),
        "kill-leader": lambda: Kill(True),
        "pause": Pause,
        "crash-all": CrashAll,
        "membership": Membership,
    }
    if name == "none":
        return []
    if name == "mix":
        return [f() for f in table.values()]
    return [table[name]()]


NAMES = ["partition-halves", "partition-oneway", "partition-leader",
         "partition-ring", "kill", "kill-leader", "pause", "crash-all",
         "membership", "mix"]


class Schedule(threading.Thread):
    """Quiet for `quiet` s, fault for `interval` s (both jittered), repeat;
    after stop(), heals the active fault."""

    def __init__(self, ctx, history, faults, interval=10.0, quiet=5.0):
        super().__init__(name="nemesis", daemon=True)
        self.ctx = ctx
        self.history = history
        self.faults = faults
        self.interval = interval
        self.quiet = quiet
        self.stopping = threading.Event()
        self.active = None
        self.injected = 0
        self.error = None

    def record(self, f, fault, action):
        inv = self.history.invoke("nemesis", f, fault, fault=fault)
        try:
            with self.ctx.lock:
                value = action()
        except Exception as e:  # a fault that cannot be applied is data
            value = {"error": "%s: %s" % (type(e).__name__, e)}
        self.history.complete(inv, "info", value=value, fault=fault)
        self.ctx.log("nemesis %s %s: %s" % (f, fault, value))
        return value

    def run(self):
        if not self.faults:
            return
        rng = self.ctx.rng
        try:
            while not self.stopping.wait(rng.uniform(0.6, 1.2) * self.quiet):
                fault = rng.choice(self.faults)
                self.active = fault
                self.record("start", fault.name,
                            lambda: fault.start(self.ctx))
                self.injected += 1
                self.stopping.wait(rng.uniform(0.6, 1.2) * self.interval)
                self.record("stop", fault.name, lambda: fault.stop(self.ctx))
                self.active = None
        except Exception as e:
            self.error = "%s: %s" % (type(e).__name__, e)
            self.ctx.log("nemesis failed: %s" % self.error)

    def stop(self):
        self.stopping.set()
        self.join(timeout=180)


def heal_all(ctx, history=None):
    """Everything back: no partition, no pause, every slot running and a
    member. Returns what it did."""
    did = {}
    with ctx.lock:
        net.heal(len(ctx.cluster.nodes))
        for x in ctx.cluster.nodes:
            if x.paused:
                x.resume()
                did.setdefault("resumed", []).append(x.name)
        for x in ctx.cluster.nodes:
            if not x.removed and not x.alive():
                ctx.cluster.restart(x)
                did.setdefault("restarted", []).append(x.name)
        # A removal whose outcome the nemesis could not see may have
        # committed: such a node runs but is no member any more.
        try:
            ids = config_ids(ctx, timeout=60.0)
        except RuntimeError as e:
            ids = None
            did["config"] = str(e)
        for x in ctx.cluster.nodes:
            if ids is not None and not x.removed and x.raft_id not in ids:
                x.stop()
                x.removed = True
                did.setdefault("found-removed", []).append(x.name)
        for x in ctx.cluster.nodes:
            if x.removed:
                m = Membership()
                m.removed = x
                did.setdefault("re-added", []).append(m.stop(ctx))
    if history is not None:
        inv = history.invoke("nemesis", "heal", None, fault="heal")
        history.complete(inv, "info", value=did, fault="heal")
    return did


class CrashMonitor(threading.Thread):
    """Notices nodes that exit on their own, records them, and restarts
    them after a second, as the supervisor docs/operations.md asks for
    would."""

    def __init__(self, ctx, history):
        super().__init__(name="crash-monitor", daemon=True)
        self.ctx = ctx
        self.history = history
        self.stopping = threading.Event()
        self.crashes = []

    def run(self):
        while not self.stopping.wait(1.0):
            with self.ctx.lock:
                for x in self.ctx.cluster.check_crashes():
                    code, pid = x.crashes[-1][1], x.crashes[-1][2]
                    what = {"node": x.name, "id": x.raft_id,
                            "exit": code, "pid": pid,
                            "signal": signal.Signals(-code).name
                            if code < 0 else None}
                    self.crashes.append(what)
                    inv = self.history.invoke("nemesis", "crash", x.name,
                                              fault="crash")
                    self.history.complete(inv, "info", value=what,
                                          fault="crash")
                    self.ctx.log("CRASH: %s" % what)
                    if not x.removed:
                        time.sleep(1.0)
                        self.ctx.cluster.restart(x)

    def stop(self):
        self.stopping.set()
        self.join(timeout=30)
