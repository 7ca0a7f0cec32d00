"""The soak's resource verdict (harness/resources.py) on made-up samples:
flat series pass, a slow leak of memory or descriptors fails, a leader
change within the slack passes, client sessions moving with the leader pass
while leaked ones fail in the sum, and short runs are not judged."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from harness import resources  # noqa: E402

MIN = 60.0
RUN = 30 * MIN


def series(rss_kb, fds, nodes=("n1", "n2", "n3"), every=10.0, run=RUN,
           sessions=lambda n, t: 0, pid=lambda n, t: 0):
    """Samples of every node every `every` s; rss_kb, fds, sessions (the
    client sessions among the fds) and pid (a number that changes when the
    node restarts) are functions of (node, t)."""
    out = []
    t = every
    while t <= run:
        for i, n in enumerate(nodes):
            out.append({"t": t, "node": n, "pid": 100 * pid(n, t) + i,
                        "rss_kb": int(rss_kb(n, t)), "fds": int(fds(n, t)),
                        "sessions": int(sessions(n, t))})
        t += every
    return out


def test_flat_nodes_are_stable():
    r = resources.stable(series(lambda n, t: 12000, lambda n, t: 28), RUN)
    assert r["judged"] and r["ok"]
    assert r["nodes"]["all"]["rss_final_kb"] == 36000


def test_memory_leak_in_one_node_is_caught():
    # 6 KiB a second on n2: +7 MiB between the reference and final peaks.
    r = resources.stable(series(
        lambda n, t: 12000 + (6 * t if n == "n2" else 0),
        lambda n, t: 28), RUN)
    assert not r["ok"]
    assert not r["nodes"]["n2"]["ok"] and r["nodes"]["n1"]["ok"]


def test_small_leak_in_every_node_is_caught_in_the_sum():
    # 3 KiB a second in each of three nodes: within each node's slack,
    # not within the sum's.
    r = resources.stable(series(lambda n, t: 12000 + 3 * t,
                                lambda n, t: 28), RUN)
    assert not r["ok"]
    assert r["nodes"]["n1"]["ok"] and not r["nodes"]["all"]["ok"]


def test_fd_leak_is_caught():
    # One descriptor a minute on n3.
    r = resources.stable(series(lambda n, t: 12000,
                                lambda n, t: 28 + (t // MIN if n == "n3"
                                                   else 0)), RUN)
    assert not r["ok"] and not r["nodes"]["n3"]["ok"]


def test_leadership_moving_within_the_slack_is_stable():
    # n1 leads in the reference window, n3 in the final one: 8 more client
    # connections and 3 MiB more while leading; a restart of n2 in the
    # middle (a new process starts smaller).
    def leader(n, t):
        return n == ("n1" if t < RUN / 2 else "n3")
    r = resources.stable(series(
        lambda n, t: 12000 + (3072 if leader(n, t) else 0) -
        (4000 if n == "n2" and 800 < t < 1000 else 0),
        lambda n, t: 28 + (8 if leader(n, t) else 0)), RUN)
    assert r["ok"], r


def test_client_sessions_follow_the_leader_but_count_in_the_sum():
    # The leader holds all 14 client sessions; n1 leads first, n3 last.
    def sessions(n, t):
        return 14 if n == ("n1" if t < RUN / 2 else "n3") else 0
    r = resources.stable(series(lambda n, t: 12000,
                                lambda n, t: 21 + sessions(n, t),
                                sessions=sessions), RUN)
    assert r["ok"], r
    # A session never closed every minute on the leader: the sum sees it.
    def leaky(n, t):
        return sessions(n, t) + (t // MIN if sessions(n, t) else 0)
    r = resources.stable(series(lambda n, t: 12000,
                                lambda n, t: 21 + leaky(n, t),
                                sessions=leaky), RUN)
    assert not r["ok"]
    assert r["nodes"]["n3"]["ok"] and not r["nodes"]["all"]["ok"]


def test_start_up_peaks_are_not_judged_but_a_leak_after_them_is():
    # Two crash-alls in the final sixth: every node restarts, reads its
    # snapshot (18 MiB for 20 s) and settles at 10 MiB again.
    def pid(n, t):
        return 1 + (t >= 1550) + (t >= 1680)

    def rss(n, t):
        return 18000 if 1550 <= t < 1570 or 1680 <= t < 1700 else 10000
    r = resources.stable(series(rss, lambda n, t: 28, pid=pid), RUN)
    assert r["ok"], r
    assert r["nodes"]["n1"]["processes"] == 3
    assert r["nodes"]["all"]["rss_final_kb"] == 30000
    # The same restarts with a leak of 60 KiB/s in n2's processes: the
    # restarts reset it, the settled part of the last process shows it.
    r = resources.stable(series(
        lambda n, t: rss(n, t) + (60 * (t - 1680) if n == "n2" and t >= 1680
                                  else 0),
        lambda n, t: 28, pid=pid), RUN)
    assert not r["ok"] and not r["nodes"]["n2"]["ok"]


def test_heap_peaks_are_reported():
    out = series(lambda n, t: 12000, lambda n, t: 28)
    for s in out:
        s["heap_kb"] = 5000 + (s["t"] > RUN / 2) * 1000
    r = resources.stable(out, RUN)
    assert r["nodes"]["n1"]["heap_ref_kb"] == 5000
    assert r["nodes"]["n1"]["heap_final_kb"] == 6000
    assert r["nodes"]["all"]["heap_final_kb"] == 18000


def test_short_runs_are_not_judged():
    r = resources.stable(series(lambda n, t: 1000 + 100 * t,
                                lambda n, t: 28 + t, run=120), 120)
    assert not r["judged"] and r["ok"]
    assert "ok" not in r["nodes"]["n1"]
