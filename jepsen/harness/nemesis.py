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

Fault durations: by default a fault lasts about `interval` seconds
(jittered). With long faults, the partitions and the pause hold 20 to 30 s
(LONG_HOLD): TCP's retransmission backoff after that long grows to 10-16 s,
which is what left a healed link dead in issue 13 while short faults did
not show it. `heal-kill-leader` is that scenario on purpose: a partition
held 20 s (20-30 s with long faults), healed, and 2 s later the leader is
killed, so the election after the kill runs over the links the partition
left in backoff.

Every nemesis completion (and the crash monitor's records) carries "state",
the nemesis's view of the cluster after the action (Context.state()), from
which availability.py finds the times when a majority could work.
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
        self.cut = set()  # (receiver slot, sender slot) pairs dropped now

    def state(self):
        """What the nemesis left: cut links, dead, paused and removed
        slots (see availability.py). Call with self.lock held."""
        nodes = self.cluster.nodes
        return {"n": len(nodes),
                "cut": sorted([r, s] for r, s in self.cut),
                "down": [x.slot for x in nodes
                         if not x.removed and not x.alive()],
                "paused": [x.slot for x in nodes if x.paused and x.alive()],
                "removed": [x.slot for x in nodes if x.removed]}

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

def heal_net(ctx):
    """Removes every partition rule."""
    net.heal(len(ctx.cluster.nodes))
    ctx.cut.clear()


def apply_grudge(ctx, grudge):
    """grudge: {receiver slot: [sender slots it must not hear]}."""
    heal_net(ctx)
    for receiver, senders in grudge.items():
        for s in senders:
            net.drop(receiver, s)
            ctx.cut.add((receiver, s))


def _halves(ctx):
    slots = [x.slot for x in ctx.cluster.nodes]
    ctx.rng.shuffle(slots)
    k = len(slots) // 2
    return sorted(slots[:k]), sorted(slots[k:])


class PartitionHalves:
    name = "partition-halves"
    long = True  # held LONG_HOLD s with long faults

    def start(self, ctx):
        a, b = _halves(ctx)
        grudge = {x: b for x in a}
        grudge.update({x: a for x in b})
        apply_grudge(ctx, grudge)
        return {"minority": a, "majority": b}

    def stop(self, ctx):
        heal_net(ctx)
        return {"healed": True}


class PartitionOneWay:
    """Random halves, cut in one direction only: the majority stops hearing
    the minority, while the minority still hears the majority."""
    name = "partition-oneway"
    long = True

    def start(self, ctx):
        a, b = _halves(ctx)
        apply_grudge(ctx, {x: a for x in b})
        return {"deaf": b, "unheard": a}

    stop = PartitionHalves.stop


class PartitionLeader:
    name = "partition-leader"
    long = True

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
    long = True

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
        """Restarts every node and returns once a quorum of them answers
        /healthz/live: a majority is alive from then on (availability.py).
        How long the processes took to start is recorded, not counted in
        the availability figure, which is about elections and failover."""
        names = []
        t0 = time.monotonic()
        for x in ctx.members():
            if not x.alive():
                ctx.cluster.restart(x)
                names.append(x.name)
        members = ctx.members()
        live = ctx.cluster.wait_live(members, len(members) // 2 + 1, 60.0)
        return {"restarted": names,
                "quorum_live_after_s": round(time.monotonic() - t0, 2)
                if live else None}


class Pause:
    """SIGSTOP a node (random or the leader; alternating), SIGCONT at stop."""
    name = "pause"
    long = True

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


class HealKillLeader:
    """The stall of issue 13 as one fault: random halves cut both ways for
    `hold` s (20 s; 20-30 s with long faults), heal, wait HEAL_GAP s, kill
    -9 the leader, restart it KILL_HOLD s later. The links the partition
    cut are then still in TCP's retransmission backoff, and the election
    after the kill needs them. Its phases go into the history as the
    partition-halves and kill-leader faults they are."""
    name = "heal-kill-leader"
    long = True
    hold = 20.0
    HEAL_GAP = 2.0
    KILL_HOLD = 8.0

    def __init__(self):
        self.partition = PartitionHalves()
        self.kill = Kill(leader=True)

    def phases(self, hold):
        """[(fault, seconds held, seconds to wait after its stop)]."""
        return [(self.partition, hold, self.HEAL_GAP),
                (self.kill, self.KILL_HOLD, 0.0)]


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
    if name == "heal-kill-leader":
        # Not part of mix: adding it there would change what a given seed
        # of mix does, and those seeds are how failures are reproduced.
        return [HealKillLeader()]
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
         "membership", "heal-kill-leader", "mix"]

# Nemeses whose faults --faults long makes longer (the others are the same
# in both modes).
LONG_NAMES = ["partition-halves", "partition-oneway", "partition-leader",
              "partition-ring", "pause", "heal-kill-leader", "mix"]
LONG_HOLD = (20.0, 30.0)


def recorded(ctx, history, f, fault, action):
    """Runs action() under the context lock between an invocation and an
    info completion that carries the value and the state after it."""
    inv = history.invoke("nemesis", f, fault, fault=fault)
    with ctx.lock:
        try:
            value = action()
        except Exception as e:  # a fault that cannot be applied is data
            value = {"error": "%s: %s" % (type(e).__name__, e)}
        state = ctx.state()
    history.complete(inv, "info", value=value, fault=fault, state=state)
    return value


class Schedule(threading.Thread):
    """Quiet for `quiet` s, fault for `interval` s (both jittered), repeat;
    after stop(), heals the active fault.

    long_faults: partitions and pauses hold LONG_HOLD s instead.
    period: start a fault every `period` s (the soak's "a fault a
    minute"), with at least 2 s of quiet after the previous one, instead
    of the jittered quiet time.
    end: monotonic time at which the test will stop the schedule; a fault
    made of phases (heal-kill-leader) starts only if all of it fits, so
    that it is never cut short into a different scenario."""

    def __init__(self, ctx, history, faults, interval=10.0, quiet=5.0,
                 long_faults=False, period=None, end=None):
        super().__init__(name="nemesis", daemon=True)
        self.ctx = ctx
        self.history = history
        self.faults = faults
        self.interval = interval
        self.quiet = quiet
        self.long_faults = long_faults
        self.period = period
        self.end = end
        self.next_at = None
        self.stopping = threading.Event()
        self.active = None
        self.injected = 0
        self.error = None

    def record(self, f, fault, action):
        value = recorded(self.ctx, self.history, f, fault, action)
        self.ctx.log("nemesis %s %s: %s" % (f, fault, value))
        return value

    def quiet_time(self):
        if self.period is None:
            return self.ctx.rng.uniform(0.6, 1.2) * self.quiet
        now = time.monotonic()
        if self.next_at is None:
            self.next_at = now + min(self.quiet, self.period)
        else:
            self.next_at = max(self.next_at + self.period, now + 2.0)
        return self.next_at - now

    def hold(self, fault):
        if self.long_faults and getattr(fault, "long", False):
            return self.ctx.rng.uniform(*LONG_HOLD)
        if getattr(fault, "hold", None):
            return fault.hold
        return self.ctx.rng.uniform(0.6, 1.2) * self.interval

    def run(self):
        if not self.faults:
            return
        rng = self.ctx.rng
        try:
            while not self.stopping.wait(self.quiet_time()):
                fault = rng.choice(self.faults)
                if hasattr(fault, "phases"):
                    phases = fault.phases(self.hold(fault))
                    need = sum(h + g for _, h, g in phases)
                    if self.end and time.monotonic() + need > self.end:
                        continue
                else:
                    phases = [(fault, None, 0.0)]
                self.injected += 1
                for f, hold, gap in phases:
                    self.active = f
                    self.record("start", f.name, lambda: f.start(self.ctx))
                    self.stopping.wait(self.hold(f) if hold is None
                                       else hold)
                    self.record("stop", f.name, lambda: f.stop(self.ctx))
                    self.active = None
                    if self.stopping.is_set() or (
                            gap and self.stopping.wait(gap)):
                        break
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
    inv = history and history.invoke("nemesis", "heal", None, fault="heal")
    with ctx.lock:
        heal_net(ctx)
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
        state = ctx.state()
    if history is not None:
        history.complete(inv, "info", value=did, fault="heal", state=state)
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
                                          fault="crash",
                                          state=self.ctx.state())
                    self.ctx.log("CRASH: %s" % what)
                    if not x.removed:
                        time.sleep(1.0)
                        recorded(self.ctx, self.history, "restart", "crash",
                                 lambda: self.ctx.cluster.restart(x)
                                 or {"restarted": x.name})

    def stop(self):
        self.stopping.set()
        self.join(timeout=30)
