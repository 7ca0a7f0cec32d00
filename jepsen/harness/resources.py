"""Resident memory and open file descriptors of every node, over a test.

A sampler thread reads /proc/<pid>/status (VmRSS) and counts
/proc/<pid>/fd of every running node every few seconds. A restarted node
is a new process: its samples carry the new pid. The samples go to
resources.jsonl; `stable()` judges a long run (the soak) against the bound
below, and report.py plots them.

The bound, for runs of at least MIN_JUDGED_S: the first sixth of the run is
warm-up (queues fill, the first snapshots are taken); the reference window
is the second sixth, the final window the last sixth (minutes 5-10 and
25-30 of a 30-minute soak). For every node, and for the sum over the nodes
at each sample ("all"), the peak RSS of the final window must stay within
the reference peak + RSS_GROWTH of it + the RSS slack, and the peak count
of open fds within the reference peak + the fd slack. Peaks, not means,
because faults restart nodes (a new process starts small) and move the
leadership: a leader holds every client connection and a few MiB more,
which is what the per-node slack is for (up to 8 client connections plus
the nemesis's). The sum does not depend on who leads.

What that can catch over the 20 minutes between the windows of a 30-minute
soak, with nodes of about 10-15 MiB: a leak of more than about 5 KiB/s in
one node (some 100 bytes per enqueue at the default rate) or 2 KiB/s in
every node, and a descriptor lost per client reconnect, or per fault in
the sum (ten faults in the last ten minutes). Smaller leaks need a longer
soak.
"""
import json
import os
import threading

MIN_JUDGED_S = 600
RSS_GROWTH = 0.1
RSS_SLACK_KB = {"node": 4 * 1024, "all": 6 * 1024}
FD_SLACK = {"node": 10, "all": 10}


def read(pid):
    """(rss kB, open fds) of a process, or None if it is gone."""
    try:
        with open("/proc/%d/status" % pid) as f:
            rss = next((int(line.split()[1]) for line in f
                        if line.startswith("VmRSS:")), 0)
        fds = len(os.listdir("/proc/%d/fd" % pid))
    except (OSError, ValueError):
        return None
    return rss, fds


class Sampler(threading.Thread):
    def __init__(self, cluster, history, path, every=5.0):
        super().__init__(name="resources", daemon=True)
        self.cluster = cluster
        self.history = history
        self.every = every
        self.stopping = threading.Event()
        self.samples = []
        self.file = open(path, "w")

    def sample(self):
        t = self.history.now() / 1e9
        for x in self.cluster.nodes:
            if not x.alive():
                continue
            r = read(x.proc.pid)
            if r is None:
                continue
            s = {"t": round(t, 2), "node": x.name, "pid": x.proc.pid,
                 "rss_kb": r[0], "fds": r[1]}
            self.samples.append(s)
            self.file.write(json.dumps(s, sort_keys=True) + "\n")
        self.file.flush()

    def run(self):
        while not self.stopping.wait(self.every):
            self.sample()

    def stop(self):
        self.stopping.set()
        self.join(timeout=30)
        self.file.close()


def backlog_summary(series, duration_s):
    """The queues' backlog (checker.backlog) at its peak, at the end of
    the workload, and its peaks in the reference and final windows: the
    memory bound only means something while this stays level."""
    if not series:
        return {}
    ref = [b for t, b in series if duration_s / 6 <= t < duration_s / 3]
    fin = [b for t, b in series if t >= duration_s * 5 / 6]
    return {"max": max(b for _, b in series), "end": series[-1][1],
            "ref_max": max(ref) if ref else None,
            "final_max": max(fin) if fin else None}


def _judge(mine, ref, fin, kind):
    """Peaks of one series ([{"t", "rss_kb", "fds"}]) and its verdict."""
    r = [s for s in mine if ref[0] <= s["t"] < ref[1]]
    f = [s for s in mine if fin[0] <= s["t"]]
    out = {"rss_max_kb": max(s["rss_kb"] for s in mine),
           "fds_max": max(s["fds"] for s in mine)}
    if r and f:
        out.update(rss_ref_kb=max(s["rss_kb"] for s in r),
                   rss_final_kb=max(s["rss_kb"] for s in f),
                   fds_ref=max(s["fds"] for s in r),
                   fds_final=max(s["fds"] for s in f))
        out["ok"] = (out["rss_final_kb"] <= (1 + RSS_GROWTH) *
                     out["rss_ref_kb"] + RSS_SLACK_KB[kind] and
                     out["fds_final"] <= out["fds_ref"] + FD_SLACK[kind])
    return out


def stable(samples, duration_s):
    """Per node and for the sum over the nodes: peaks of the reference and
    final windows and whether they keep the bound. Judged only for runs of
    MIN_JUDGED_S or more ("judged")."""
    out = {"judged": duration_s >= MIN_JUDGED_S, "ok": True, "nodes": {},
           "bound": "peak RSS of the last sixth of the run <= the peak of "
           "the reference (its second sixth) + %d%% + %d MiB per node, + "
           "%d MiB for the sum over the nodes; peak open fds <= reference "
           "peak + %d per node, + %d for the sum" % (
               RSS_GROWTH * 100, RSS_SLACK_KB["node"] // 1024,
               RSS_SLACK_KB["all"] // 1024, FD_SLACK["node"],
               FD_SLACK["all"])}
    if not samples:
        return out
    ref = (duration_s / 6, duration_s / 3)
    fin = (duration_s * 5 / 6, float("inf"))
    for name in sorted({s["node"] for s in samples}):
        mine = [s for s in samples if s["node"] == name]
        out["nodes"][name] = _judge(mine, ref, fin, "node")
        out["nodes"][name]["processes"] = len({s["pid"] for s in mine})
    total = {}
    for s in samples:
        x = total.setdefault(s["t"], {"t": s["t"], "rss_kb": 0, "fds": 0})
        x["rss_kb"] += s["rss_kb"]
        x["fds"] += s["fds"]
    out["nodes"]["all"] = _judge(list(total.values()), ref, fin, "all")
    if out["judged"]:
        out["ok"] = all(v.get("ok", True) for v in out["nodes"].values())
    else:
        for v in out["nodes"].values():
            v.pop("ok", None)
    return out
