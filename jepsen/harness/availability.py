"""Availability as a figure that can fail: the longest time without a
confirmed enqueue while the nemesis left a majority able to work.

The checker's plain "longest unavailability" also counts stretches in which
no majority could run at all (a whole-cluster crash, a majorities ring),
where no broker can confirm anything. This module measures only the time in
which Raft must make progress: a majority of the members alive, not paused,
and able to talk to each other both ways. Those are the *majority windows*.
Inside them, unavailability at time t is t minus the later of the last
confirmed enqueue and the window's start; the figure is its maximum. A
window starts when a fault that left no majority is undone (at the end of
the heal or restart), so the time to recover counts; it does not restart at
a fault that keeps a majority (a leader kill or pause), so the gap from the
last confirm before the kill to the first one after it counts whole.

The nemesis state comes from the history: every nemesis completion (and the
crash monitor's records) carries "state", a snapshot of the nemesis's view:

    {"n": 5, "cut": [[receiver, sender], ...], "down": [slot, ...],
     "paused": [slot, ...], "removed": [slot, ...]}

While a nemesis action runs (from its invocation to its completion) a
majority counts only if the states before and after both have one: an
action that may break the majority is not blamed on the cluster.

A node that crashes is known only when the crash monitor notices (up to a
second later); one crashed node never takes the majority away from 5, so
that delay does not change the windows of a 5-node run.

The bound: two election timeouts plus one second. A follower notices the
loss of the leader when its randomized timeout (1-2 election timeouts after
the leader's last heartbeat) fires, and until then it refuses every vote;
once the last of a majority has noticed, the next retry of a node without a
leader (a quarter to a half of an election timeout, fixed per node id:
consensus/cons_node.c, hurry_leaderless) wins. The second is for that retry
and for the clients to notice and find the new leader (their attempt
timeout is the election timeout, see workload.py). A test whose figure is
above the bound fails.
"""
import bisect
import itertools


def bound_s(election_timeout_ms):
    """The pass/fail bound for a given election timeout, in seconds."""
    return 2 * election_timeout_ms / 1000.0 + 1.0


def has_majority(state, n=None):
    """Does `state` leave a majority of the members alive, running and
    connected pairwise in both directions (a clique of a quorum)?"""
    n = state.get("n", n)
    removed = set(state.get("removed", ()))
    members = [s for s in range(1, n + 1) if s not in removed]
    quorum = len(members) // 2 + 1
    gone = set(state.get("down", ())) | set(state.get("paused", ()))
    up = [s for s in members if s not in gone]
    cut = {tuple(c) for c in state.get("cut", ())}
    for group in itertools.combinations(up, quorum):
        if all((a, b) not in cut and (b, a) not in cut
               for a, b in itertools.combinations(group, 2)):
            return True
    return False


def nemesis_actions(ops):
    """[(invoked ns, completed ns, state)] of every nemesis op that carries
    a state, in history order."""
    pending, out = {}, []
    for op in ops:
        if op.get("process") != "nemesis":
            continue
        key = (op.get("f"), op.get("fault"))
        if op["type"] == "invoke":
            pending[key] = op["time"]
        elif "state" in op:
            out.append((pending.pop(key, op["time"]), op["time"],
                        op["state"]))
    return out


def majority_windows(ops, n, start_ns, end_ns):
    """Merged [a, b] intervals (ns) within [start, end] in which a
    majority could work (see the module's comment)."""
    acts = nemesis_actions(ops)
    marks = sorted({start_ns, end_ns} | {t for a in acts for t in a[:2]
                                         if start_ns < t < end_ns})
    initial = {"n": n}
    windows = []
    for a, b in zip(marks, marks[1:]):
        # The state in effect: the last completion at or before a.
        done = [x for x in acts if x[1] <= a]
        state = done[-1][2] if done else initial
        ok = has_majority(state, n)
        # Actions in progress over [a, b): their outcome must keep it too.
        for ti, tc, st in acts:
            if ti <= a < tc and not has_majority(st, n):
                ok = False
        if not ok:
            continue
        if windows and windows[-1][1] == a:
            windows[-1][1] = b
        else:
            windows.append([a, b])
    return windows


class _Causes:
    """The fault of the last nemesis op at or before a time: what the
    cluster was recovering from when a gap ended."""

    def __init__(self, ops):
        nem = [o for o in ops if o.get("process") == "nemesis"]
        self.times = [o["time"] for o in nem]
        self.labels = [(o.get("fault") or "?", o.get("f")) for o in nem]

    def at(self, t_ns):
        i = bisect.bisect_right(self.times, t_ns)
        return self.labels[i - 1] if i else ("none", None)


def check(ops, n, election_timeout_ms):
    """The availability figure of a history: the longest gap between
    confirmed enqueues inside majority windows, where it was, what it
    followed, the longest per fault, and the verdict against the bound."""
    enq_inv = [o["time"] for o in ops if o.get("f") == "enqueue"
               and o["type"] == "invoke" and o.get("process") != "nemesis"]
    enq_ok = sorted(o["time"] for o in ops if o.get("f") == "enqueue"
                    and o["type"] == "ok")
    bound = bound_s(election_timeout_ms)
    result = {"bound_s": bound, "election_timeout_ms": election_timeout_ms,
              "longest_s": 0.0, "from_s": None, "to_s": None,
              "after": None, "by_fault": {}, "majority_s": 0.0,
              "no_majority": [], "ok": True}
    if not enq_inv:
        return result
    start, end = min(enq_inv), max(enq_inv)
    windows = majority_windows(ops, n, start, end)
    result["majority_s"] = round(sum(b - a for a, b in windows) / 1e9, 3)
    gaps = [(a, b) for a, b in zip([start] + [w[1] for w in windows],
                                   [w[0] for w in windows] + [end]) if b > a]
    result["no_majority"] = [[round(a / 1e9, 3), round(b / 1e9, 3)]
                             for a, b in gaps]
    causes = _Causes(ops)
    best = (0, None, None)
    by_fault = {}
    for a, b in windows:
        pts = [a] + enq_ok[bisect.bisect_right(enq_ok, a):
                           bisect.bisect_left(enq_ok, b)] + [b]
        for x, y in zip(pts, pts[1:]):
            if y - x > best[0]:
                best = (y - x, x, y)
            fault = causes.at(y)[0]
            by_fault[fault] = max(by_fault.get(fault, 0), y - x)
    if best[1] is not None:
        result.update(longest_s=round(best[0] / 1e9, 3),
                      from_s=round(best[1] / 1e9, 3),
                      to_s=round(best[2] / 1e9, 3),
                      after=" ".join(x for x in causes.at(best[2]) if x))
    result["by_fault"] = {k: round(v / 1e9, 3)
                          for k, v in sorted(by_fault.items())}
    result["ok"] = result["longest_s"] <= bound
    return result


def since_last_ok(ops, n, step_s=0.1):
    """For the plot: [(t s, seconds since the last confirmed enqueue or
    the window's start, in a majority window?)] sampled every step_s."""
    enq_inv = [o["time"] for o in ops if o.get("f") == "enqueue"
               and o["type"] == "invoke" and o.get("process") != "nemesis"]
    if not enq_inv:
        return []
    start, end = min(enq_inv), max(enq_inv)
    windows = majority_windows(ops, n, start, end)
    enq_ok = sorted(o["time"] for o in ops if o.get("f") == "enqueue"
                    and o["type"] == "ok")
    out, i, w = [], 0, 0
    last = start
    t = start
    step = int(step_s * 1e9)
    while t <= end:
        while i < len(enq_ok) and enq_ok[i] <= t:
            last = max(last, enq_ok[i])
            i += 1
        while w < len(windows) and windows[w][1] < t:
            w += 1
        inside = w < len(windows) and windows[w][0] <= t <= windows[w][1]
        ref = max(last, windows[w][0]) if inside else last
        out.append((t / 1e9, (t - ref) / 1e9, inside))
        t += step
    return out
