"""Resident memory and open file descriptors of every node, over a test.

A sampler thread reads /proc/<pid>/status (VmRSS) and counts
/proc/<pid>/fd of every running node every few seconds. A restarted node
is a new process: its samples carry the new pid. The samples go to
resources.jsonl; `stable()` judges a long run (the soak) against the bound
below, and report.py plots them.

The bound, for runs of at least MIN_JUDGED_S: the first sixth of the run is
warm-up (queues fill, the first snapshots are taken); the reference is the
next third, the final window the last third. For every node, the peak RSS
of the final window must stay within RSS_RATIO x the reference peak +
RSS_SLACK_KB, and its peak fd count within the reference peak +
FD_SLACK. Peaks, not means, because faults restart nodes (a new process
starts small) and move the leadership (a leader holds more). A leak of a
few bytes per operation or one descriptor per fault grows past this over
the final third; the slack absorbs the allocator's and the queue's normal
swing.
"""
import json
import os
import threading

MIN_JUDGED_S = 600
RSS_RATIO = 1.2
RSS_SLACK_KB = 8 * 1024
FD_SLACK = 8


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


def stable(samples, duration_s):
    """Per node: peaks of the reference and final windows and whether they
    keep the bound; {"judged": False} for runs shorter than MIN_JUDGED_S."""
    out = {"judged": duration_s >= MIN_JUDGED_S, "ok": True, "nodes": {},
           "bound": "final-third peak RSS <= %.1f x reference peak + %d MiB,"
           " peak fds <= reference peak + %d (reference: from 1/6 to 1/2 of"
           " the run)" % (RSS_RATIO, RSS_SLACK_KB // 1024, FD_SLACK)}
    ref = (duration_s / 6, duration_s / 2)
    fin = (duration_s * 2 / 3, float("inf"))
    for name in sorted({s["node"] for s in samples}):
        mine = [s for s in samples if s["node"] == name]
        r = [s for s in mine if ref[0] <= s["t"] < ref[1]]
        f = [s for s in mine if fin[0] <= s["t"] < fin[1]]
        node = {"rss_max_kb": max(s["rss_kb"] for s in mine),
                "fds_max": max(s["fds"] for s in mine),
                "processes": len({s["pid"] for s in mine})}
        if out["judged"] and r and f:
            node.update(
                rss_ref_kb=max(s["rss_kb"] for s in r),
                rss_final_kb=max(s["rss_kb"] for s in f),
                fds_ref=max(s["fds"] for s in r),
                fds_final=max(s["fds"] for s in f))
            node["ok"] = (node["rss_final_kb"] <= RSS_RATIO *
                          node["rss_ref_kb"] + RSS_SLACK_KB and
                          node["fds_final"] <= node["fds_ref"] + FD_SLACK)
            out["ok"] = out["ok"] and node["ok"]
        out["nodes"][name] = node
    return out
