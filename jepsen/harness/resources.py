"""Resident memory and open file descriptors of every node, over a test.

A sampler thread reads /proc/<pid>/status (VmRSS) and counts
/proc/<pid>/fd of every running node every few seconds, and among those the
client sessions: sockets whose local port is the client port (found in
/proc/<pid>/net/tcp, the node's own namespace). A restarted node
is a new process: its samples carry the new pid. The samples go to
resources.jsonl; `stable()` judges a long run (the soak) against the bound
below, and report.py plots them.

The bound, for runs of at least MIN_JUDGED_S: the first sixth of the run is
warm-up (queues fill, the first snapshots are taken, the producers' dedup
windows fill: the soak sets them to 2 minutes, see workload.py); the
reference window is the second sixth, the final window the last sixth
(minutes 5-10 and 25-30 of a 30-minute soak). For every node, and for the
sum over the nodes at each sample ("all"), the peak RSS of the final window
must stay within the reference peak + RSS_GROWTH of it + the RSS slack, and
the peak count of open fds within the reference peak + the fd slack. Peaks,
not means, because faults move the leadership: a leader holds a few MiB
more, which is what the per-node RSS slack is for. A leader also holds every
client session (the workers', the followers' leader watches), 20 fds more
than a follower in a soak, so a node's own count leaves the client sessions
out; the sum over the nodes counts them, as it does not depend on who leads.

Only settled processes are judged: samples of a process younger than
SETTLE_S are left out (and the sum only counts times when every node's
process is settled). A node that starts reads its snapshot and replays its
log: its RSS peaks for a few seconds (18 MiB against 10 settled, in the
first soak) and falls back; three crash-all faults in the last sixth of that
soak made every node's final peak such a start-up peak, which said nothing
about leaks.

The sampler also reads raftmq_heap_bytes from each node's /metrics (the
heap in use, which falls when memory is freed, where RSS keeps the
high-water mark of a busy moment) and reports its peaks the same way, so a
failed RSS verdict can be told apart: growth of the heap in use is a leak,
RSS above a level heap is fragmentation or a peak.

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
SETTLE_S = 60.0
RSS_GROWTH = 0.1
RSS_SLACK_KB = {"node": 4 * 1024, "all": 6 * 1024}
FD_SLACK = {"node": 10, "all": 10}


def _session_inodes(pid, port):
    """Inodes of the TCP sockets in pid's namespace whose local port is
    `port` and that are not listening: the client sessions."""
    out = set()
    for table in ("tcp", "tcp6"):
        try:
            with open("/proc/%d/net/%s" % (pid, table)) as f:
                next(f)
                for line in f:
                    x = line.split()
                    if int(x[1].rsplit(":", 1)[1], 16) == port and \
                            x[3] != "0A":
                        out.add(x[9])
        except (OSError, StopIteration, ValueError, IndexError):
            pass
    return out


def read(pid, client_port=None):
    """(rss kB, open fds, client sessions among them) of a process, or
    None if it is gone."""
    try:
        with open("/proc/%d/status" % pid) as f:
            rss = next((int(line.split()[1]) for line in f
                        if line.startswith("VmRSS:")), 0)
        fd_dir = "/proc/%d/fd" % pid
        links = []
        for fd in os.listdir(fd_dir):
            try:
                links.append(os.readlink(os.path.join(fd_dir, fd)))
            except OSError:
                pass  # closed meanwhile
    except (OSError, ValueError):
        return None
    sessions = 0
    if client_port is not None:
        inodes = _session_inodes(pid, client_port)
        sessions = sum(1 for x in links if x.startswith("socket:[") and
                       x[8:-1] in inodes)
    return rss, len(links), sessions


def heap_kb(node):
    """raftmq_heap_bytes of a node's /metrics in kB, or None when it does
    not answer (paused, starting) or has no such metric."""
    if node.paused:
        return None
    try:
        code, text = node.http("/metrics", timeout=1.0)
    except (OSError, ValueError):
        return None
    if code != 200:
        return None
    for line in text.splitlines():
        if line.startswith("raftmq_heap_bytes "):
            return int(float(line.split()[1])) // 1024
    return None


class Sampler(threading.Thread):
    def __init__(self, cluster, history, path, every=5.0, client_port=None):
        super().__init__(name="resources", daemon=True)
        self.cluster = cluster
        self.history = history
        self.every = every
        self.client_port = client_port
        self.stopping = threading.Event()
        self.samples = []
        self.file = open(path, "w")

    def sample(self):
        t = self.history.now() / 1e9
        for x in self.cluster.nodes:
            if not x.alive():
                continue
            r = read(x.proc.pid, self.client_port)
            if r is None:
                continue
            s = {"t": round(t, 2), "node": x.name, "pid": x.proc.pid,
                 "rss_kb": r[0], "fds": r[1], "sessions": r[2]}
            heap = heap_kb(x)
            if heap is not None:
                s["heap_kb"] = heap
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


def _peak(samples, key):
    v = [s[key] for s in samples if key in s]
    return max(v) if v else None


def _judge(mine, ref, fin, kind):
    """Peaks of one series ([{"t", "rss_kb", "fds", "heap_kb"?}]) and its
    verdict: fds of a node leave its client sessions out, the sum's count
    them."""
    def fds(s):
        return s["fds"] - (s.get("sessions", 0) if kind == "node" else 0)
    for s in mine:
        s["fds_judged"] = fds(s)
    r = [s for s in mine if ref[0] <= s["t"] < ref[1]]
    f = [s for s in mine if fin[0] <= s["t"]]
    out = {"rss_max_kb": _peak(mine, "rss_kb"),
           "fds_max": _peak(mine, "fds_judged"),
           "heap_max_kb": _peak(mine, "heap_kb")}
    if r and f:
        out.update(rss_ref_kb=_peak(r, "rss_kb"),
                   rss_final_kb=_peak(f, "rss_kb"),
                   fds_ref=_peak(r, "fds_judged"),
                   fds_final=_peak(f, "fds_judged"),
                   heap_ref_kb=_peak(r, "heap_kb"),
                   heap_final_kb=_peak(f, "heap_kb"))
        out["ok"] = (out["rss_final_kb"] <= (1 + RSS_GROWTH) *
                     out["rss_ref_kb"] + RSS_SLACK_KB[kind] and
                     out["fds_final"] <= out["fds_ref"] + FD_SLACK[kind])
    return out


def settled(samples):
    """The samples of processes at least SETTLE_S old (by their first
    sample)."""
    born = {}
    for s in samples:
        born.setdefault((s["node"], s["pid"]), s["t"])
    return [s for s in samples
            if s["t"] - born[(s["node"], s["pid"])] >= SETTLE_S]


def stable(samples, duration_s):
    """Per node and for the sum over the nodes: peaks of the reference and
    final windows and whether they keep the bound. Judged only for runs of
    MIN_JUDGED_S or more ("judged")."""
    out = {"judged": duration_s >= MIN_JUDGED_S, "ok": True, "nodes": {},
           "bound": "processes settled %d s after they start; peak RSS of "
           "the last sixth of the run <= the peak of the reference (its "
           "second sixth) + %d%% + %d MiB per node, + %d MiB for the sum "
           "over the nodes; peak open fds <= reference peak + %d per node "
           "(client sessions left out), + %d for the sum (with them)" % (
               SETTLE_S, RSS_GROWTH * 100, RSS_SLACK_KB["node"] // 1024,
               RSS_SLACK_KB["all"] // 1024, FD_SLACK["node"],
               FD_SLACK["all"])}
    nodes = sorted({s["node"] for s in samples})
    samples = settled(samples)
    if not samples:
        return out
    ref = (duration_s / 6, duration_s / 3)
    fin = (duration_s * 5 / 6, float("inf"))
    for name in nodes:
        mine = [dict(s) for s in samples if s["node"] == name]
        if not mine:
            continue
        out["nodes"][name] = _judge(mine, ref, fin, "node")
        out["nodes"][name]["processes"] = len({s["pid"] for s in mine})
    by_t = {}
    for s in samples:
        by_t.setdefault(s["t"], []).append(s)
    total = []
    for t, xs in sorted(by_t.items()):
        if len(xs) < len(nodes):
            continue  # a node is starting, down or unsettled
        x = {"t": t, "rss_kb": sum(s["rss_kb"] for s in xs),
             "fds": sum(s["fds"] for s in xs)}  # client sessions included
        if all("heap_kb" in s for s in xs):
            x["heap_kb"] = sum(s["heap_kb"] for s in xs)
        total.append(x)
    if total:
        out["nodes"]["all"] = _judge(total, ref, fin, "all")
    if out["judged"]:
        out["ok"] = all(v.get("ok", True) for v in out["nodes"].values())
    else:
        for v in out["nodes"].values():
            v.pop("ok", None)
    return out
