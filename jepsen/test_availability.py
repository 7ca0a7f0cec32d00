"""The availability figure against hand-made histories.

Each test lays out confirmed enqueues and nemesis actions (with the state
the nemesis records) at chosen times, and checks which stretches count as
unavailability with a majority up, which do not, and the verdict against
the bound. Run: pytest jepsen/.
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from harness import availability  # noqa: E402

S = 10**9
ALL_UP = {"n": 5, "cut": [], "down": [], "paused": [], "removed": []}


# Majorities ring 1-2-3-4-5-1: each node hears its two neighbours only.
RING = [[a, b] for a in range(1, 6) for b in range(1, 6)
        if a != b and (a - b) % 5 not in (1, 4)]


def halves(minority, majority):
    cut = [[a, b] for a in minority for b in majority]
    return cut + [[b, a] for a in minority for b in majority]


class H:
    def __init__(self):
        self.ops = []

    def add(self, t, **op):
        op.update(time=int(t * S), index=len(self.ops))
        self.ops.append(op)

    def confirms(self, t0, t1, every=0.2, process=0):
        """An enqueue confirmed every `every` s from t0 to t1."""
        t = t0
        while t <= t1 + 1e-9:
            self.add(t - 0.01, type="invoke", f="enqueue", value=t,
                     process=process)
            self.add(t, type="ok", f="enqueue", value=t, process=process)
            t += every

    def nemesis(self, t, f, fault, state, took=0.05):
        self.add(t, type="invoke", f=f, process="nemesis", fault=fault)
        self.add(t + took, type="info", f=f, process="nemesis", fault=fault,
                 state=dict(ALL_UP, **state))


def test_bound_is_two_election_timeouts_and_a_second():
    assert availability.bound_s(1000) == 3.0
    assert availability.bound_s(500) == 2.0


def test_majority_needs_a_connected_quorum_of_running_members():
    ok = availability.has_majority
    assert ok(ALL_UP)
    assert ok(dict(ALL_UP, cut=halves([1, 2], [3, 4, 5])))
    assert not ok(dict(ALL_UP, down=[1, 2, 3]))
    assert not ok(dict(ALL_UP, down=[1], paused=[2, 3]))
    assert ok(dict(ALL_UP, down=[1], paused=[2]))
    # One way is enough to break a pair.
    assert not ok(dict(ALL_UP, down=[4, 5], cut=[[1, 2]]))
    # Majorities ring: no three nodes all hear each other.
    assert not ok(dict(ALL_UP, cut=RING))
    # A removed member does not count: 4 members need 3.
    assert ok(dict(ALL_UP, removed=[5], down=[4]))
    assert not ok(dict(ALL_UP, removed=[5], down=[3, 4]))


def test_steady_confirms_are_available():
    h = H()
    h.confirms(0, 20)
    r = availability.check(h.ops, 5, 1000)
    assert r["ok"] and r["longest_s"] < 0.3
    assert r["no_majority"] == []


def scenario(fault, state, confirm_at, stop_at=None, took=0.05):
    """Confirms from 0 to 10 s, `fault` started at 10.05 s leaving `state`
    (its action taking `took` s), stopped at `stop_at` if given, confirms
    again from `confirm_at` on; returns the availability result."""
    h = H()
    h.confirms(0, 10)
    h.nemesis(10.05, "start", fault, state, took=took)
    if stop_at is not None:
        h.nemesis(stop_at, "stop", fault, {})
    h.confirms(confirm_at, confirm_at + 6)
    return availability.check(h.ops, 5, 1000)


def test_stall_after_a_leader_kill_is_measured_and_fails():
    # 12 s without a confirm, a majority up all along.
    r = scenario("kill-leader", {"down": [1]}, 22)
    assert not r["ok"]
    assert 11.9 < r["longest_s"] < 12.1
    assert r["from_s"] == 10.0 and r["after"] == "kill-leader start"
    assert r["by_fault"]["kill-leader"] == r["longest_s"]


def test_quick_election_after_a_kill_passes():
    r = scenario("kill-leader", {"down": [1]}, 12.5)
    assert r["ok"] and 2.4 < r["longest_s"] < 2.6


def test_no_majority_is_not_blamed_but_recovery_after_it_is():
    # 20 s without confirms while every node was down: not counted. The
    # restart completed at 30.05; the first confirm 4 s later counts.
    r = scenario("crash-all", {"down": [1, 2, 3, 4, 5]}, 34.05, stop_at=30)
    assert not r["ok"]
    assert 3.9 < r["longest_s"] < 4.1
    assert r["from_s"] == 30.05 and r["after"] == "crash-all stop"
    assert r["no_majority"] == [[10.05, 30.05]]


def test_partition_with_a_majority_side_counts():
    # The majority side took 7 s to confirm again.
    r = scenario("partition-halves", {"cut": halves([1, 2], [3, 4, 5])}, 17)
    assert not r["ok"] and 6.9 < r["longest_s"] < 7.1


def test_ring_partition_is_not_counted():
    r = scenario("partition-ring", {"cut": RING}, 26, stop_at=25)
    assert r["ok"] and 0.9 < r["longest_s"] < 1.0


def test_an_action_that_breaks_the_majority_is_not_blamed_while_it_runs():
    # The kill of every node took 5 s to complete: from its invocation on,
    # no majority is assumed.
    r = scenario("crash-all", {"down": [1, 2, 3, 4, 5]}, 21, stop_at=20,
                 took=5)
    assert r["no_majority"] == [[10.05, 20.05]]
    assert r["ok"]


def test_since_last_ok_rises_and_resets():
    h = H()
    h.confirms(0, 2, every=1)
    h.confirms(6, 7, every=1)
    pts = availability.since_last_ok(h.ops, 5, step_s=0.5)
    peak = max(p[1] for p in pts)
    assert 3.9 < peak < 4.1
    assert all(p[2] for p in pts)
