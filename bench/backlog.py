#!/usr/bin/python3
"""raftmq with a deep backlog: one queue filled in steps with no consumer,
then a follower killed and a node restarted at depth, then the drain; the
targets of issue 14 part 5 marked met / missed.

A fresh 3-node cluster on 127.0.0.1 (free ports, temporary data dirs, as
bench/compare.py). Per fill step, `raftmq bench W1 --keep-queue` publishes
--size bodies (1 KiB) into the queue `backlog` until it holds the step's
depth, while a probe (`raftmq bench W4` at one message every 20 ms, its own
queue drained by its consumer) measures confirm latency; after the step:
RSS of every node (/proc, also sampled every 0.25 s for the peak), and from
each node's /metrics the snapshot index and bytes and the store bytes
(raftmq_store_disk_bytes). At --restart-at (default:
the deepest step): kill -9 of a follower, --restart-publish messages while
it is down, then the time until its applied index reaches the leader's
commit index; then a graceful restart (SIGTERM, start) of the leader (or a
follower) and the time until it is ready and a publish through it succeeds.
At the end `raftmq bench W3 --keep-queue` drains the backlog with acking
consumers, and a plain W3 drains a shallow queue for comparison.

    bench/backlog.py                          # 0.2M..10M or --max-rss-gib
    bench/backlog.py --steps 0.2M,0.5M,1M,2M  # or --step 1M --depth 10M
    bench/backlog.py --quick                  # CI smoke: 20k, 50k (~1 min)
    bench/backlog.py --json > run.json        # one JSON document
    bench/backlog.py --chart out.png [--chart-before old.json]
    bench/backlog.py --report run.json [--chart out.png]   # run nothing

--max-rss-gib (default 6) stops filling before a node would pass it (from
the growth per message so far) or as soon as one does, and the table says
so; a node past 1.5x that, or the machine below 1.5 GiB available, stops
the run. Binaries: $RAFTMQD (else build/plain/node/raftmqd) and $RAFTMQ
(else build/plain/client/cli/raftmq), or --raftmqd / --raftmq. Exit status
0, or 1 if a publish, the probe or a drain failed, a node died, or a
restarted node never caught up; missed targets do not fail a run. Only
Debian's python3 (and python3-matplotlib for --chart).
"""
import argparse
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request

sys.dont_write_bytecode = True  # no bench/__pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import backlog_report as rep  # noqa: E402
from compare import ROOT, Cluster, add_cluster_args, find_bin, log  # noqa

QUEUE = "backlog"
PROBE_QUEUE = "backlog-probe"
SHALLOW_QUEUE = "backlog-shallow"
CHECK_QUEUE = "backlog-restart-check"
FULL_STEPS = "0.2M,0.5M,1M,2M,3M,4M,5M,6M,7M,8M,9M,10M"
QUICK_STEPS = "20k,50k"
MEM_AVAILABLE_MIN_MIB = 1536  # stop the run when the machine gets this low
HARD_FACTOR = 1.5             # a node past max-rss x this stops the run
DRAIN_ATTEMPTS = 5            # W3 runs for one drain, outages included


def parse_count(s):
    """'0.2M' -> 200000, '20k' -> 20000, '1500' -> 1500 (decimal)."""
    m = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*([kKmMgG]?)\s*", s)
    if not m:
        raise argparse.ArgumentTypeError("not a count: %r (e.g. 200k, "
                                         "0.5M, 10M)" % s)
    mult = {"": 1, "k": 10**3, "m": 10**6, "g": 10**9}[m.group(2).lower()]
    return int(round(float(m.group(1)) * mult))


def parse_metrics(body):
    """Prometheus text -> {'name{labels}': value}."""
    out = {}
    for line in body.splitlines():
        if not line or line.startswith("#"):
            continue
        name, _, value = line.rpartition(" ")
        try:
            out[name] = float(value)
        except ValueError:
            pass
    return out


class Aborted(Exception):
    """The run cannot go on (a node died, memory ran out, Ctrl-C)."""


class Sampler(threading.Thread):
    """Samples every node's RSS every 0.25 s: the peak of the current phase,
    and the hard stop (a node past max-rss x 1.5, or the machine low on
    memory kills the cluster rather than the machine)."""

    def __init__(self, cluster, hard_mib):
        super().__init__(daemon=True)
        self.cluster = cluster
        self.hard_mib = hard_mib
        self.lock = threading.Lock()
        self.peak = [None] * len(cluster.nodes)
        self.last = [None] * len(cluster.nodes)
        self.stop_reason = None
        self.done = threading.Event()

    def reset(self):
        with self.lock:
            self.peak = list(self.last)

    def peaks(self):
        with self.lock:
            return list(self.peak)

    def run(self):
        while not self.done.wait(0.25):
            rss = self.cluster.rss_mib()
            with self.lock:
                self.last = rss
                self.peak = [p if r is None else r if p is None else
                             max(p, r) for p, r in zip(self.peak, rss)]
            avail = mem_available_mib()
            why = None
            if rep.max_of(rss) is not None and \
                    rep.max_of(rss) > self.hard_mib:
                why = "a node's RSS passed %.0f MiB" % self.hard_mib
            elif avail is not None and avail < MEM_AVAILABLE_MIN_MIB:
                why = "the machine has only %.0f MiB available" % avail
            if why and self.stop_reason is None:
                self.stop_reason = why
                log("STOPPING THE RUN: %s; killing the nodes" % why)
                for n in self.cluster.nodes:
                    if self.cluster.alive(n):
                        n["proc"].kill()


def mem_available_mib():
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


def loadavg():
    with open("/proc/loadavg") as f:
        return " ".join(f.read().split()[:3])


class Run:
    def __init__(self, a, raftmqd, raftmq):
        self.a = a
        self.raftmq = raftmq
        self.cluster = Cluster(raftmqd, a.base_port,
                               extra_args=a.node_arg or [])
        self.sampler = Sampler(self.cluster,
                               a.max_rss_gib * 1024 * HARD_FACTOR)
        self.children = []  # CLI processes to kill on the way out
        self.notes = []
        self.ok = True
        self.depth = 0
        self.confirmed = 0  # publishes confirmed into QUEUE (None: unknown)
        self.doc = {"meta": {}, "steps": [], "restart": {}, "drain": {},
                    "notes": self.notes}

    # -------------------------------------------------------------- tools

    def check(self):
        if self.sampler.stop_reason:
            raise Aborted(self.sampler.stop_reason)
        for n in self.cluster.nodes:
            if not self.cluster.alive(n):
                raise Aborted("node %d died (exit status %s; log: %s/node%d"
                              ".log)" % (n["id"], n["proc"].returncode,
                                         self.cluster.dir, n["id"]))

    def http(self, n, path, timeout=5):
        url = "http://127.0.0.1:%d%s" % (n["http"], path)
        try:
            with urllib.request.urlopen(url, timeout=timeout) as r:
                return r.status, r.read().decode()
        except urllib.error.HTTPError as e:
            return e.code, ""
        except OSError:
            return 0, ""

    def metrics(self, n, timeout=5):
        code, body = self.http(n, "/metrics", timeout)
        return parse_metrics(body) if code == 200 else None

    def leader(self, wait=60):
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            for n in self.cluster.nodes:
                if not self.cluster.alive(n):
                    continue
                m = self.metrics(n)
                if m and m.get("raftmq_raft_is_leader") == 1:
                    return n
            time.sleep(0.1)
        raise Aborted("no leader within %d s" % wait)

    def cli(self, args, timeout=60, node=None):
        addr = ("127.0.0.1:%d" % node["client"] if node
                else self.cluster.addresses())
        return subprocess.run([self.raftmq, "--cluster", addr] + args,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True, timeout=timeout)

    def start_bench(self, args):
        p = subprocess.Popen(
            [self.raftmq, "--cluster", self.cluster.addresses(), "bench"] +
            args + ["--json"], stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, text=True)
        self.children.append(p)
        return p

    def bench_result(self, p, what, timeout=None, must=True):
        """The JSON object of a finished `raftmq bench` (None if none); a
        failure fails the run if `must`."""
        try:
            out, err = p.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            p.kill()
            out, err = p.communicate()
            log("%s: no result within %s s" % (what, timeout))
        self.children.remove(p)
        for line in err.strip().splitlines():
            log("  %s: %s" % (what, line))
        r = None
        for line in out.splitlines():
            if line.startswith("{"):
                r = json.loads(line)
        if p.returncode != 0 or r is None:
            log("%s FAILED (exit %s)" % (what, p.returncode))
            self.ok = self.ok and not must
        return r

    def pids(self):
        return self.cluster.pids_arg()

    def fail(self, msg):
        log("FAILED: " + msg)
        self.notes.append("FAILED: " + msg)
        self.ok = False

    def count_confirmed(self, r):
        """Adds a publish run's confirms; the queue must then hold exactly
        that many (no consumer, no ids: nothing may be lost or doubled)."""
        if r is None or self.confirmed is None:
            self.confirmed = None
            return
        self.confirmed += r.get("msgs") or 0
        depth = self.queue_depth()
        if depth != self.confirmed:
            self.fail("the queue holds %d messages but %d were confirmed" %
                      (depth, self.confirmed))
            self.confirmed = None

    def queue_depth(self):
        m = self.metrics(self.leader()) or {}
        return int(m.get('raftmq_queue_messages_ready{queue="%s"}' % QUEUE,
                         0))

    def queue_len(self, queue):
        """Ready, unacked and delayed messages of `queue`, on the leader."""
        m = self.metrics(self.leader()) or {}
        return int(sum(m.get('raftmq_queue_messages_%s{queue="%s"}' % (
            k, queue), 0) for k in ("ready", "unacked", "delayed")))

    def leader_changes(self):
        """{node id: (pid, raftmq_raft_leader_changes_total)}."""
        out = {}
        for n in self.cluster.nodes:
            m = self.metrics(n) if self.cluster.alive(n) else None
            if m and "raftmq_raft_leader_changes_total" in m:
                out[n["id"]] = (n["proc"].pid,
                                m["raftmq_raft_leader_changes_total"])
        return out

    def changes_since(self, base):
        """Leader changes since `base` (leader_changes()): the most any
        node that ran all along saw."""
        now = self.leader_changes()
        d = [now[i][1] - base[i][1] for i in now
             if i in base and base[i][0] == now[i][0]]
        return int(max(d)) if d else None

    def node_stats(self):
        """Snapshot index and bytes, store bytes and all raftmq_store_*
        metrics, per node (None where a node did not answer)."""
        out = {"snapshot_index": [], "snapshot_bytes": [], "store_bytes": [],
               "store": [], "applied_index": [], "snapshot": []}
        for n in self.cluster.nodes:
            m = self.metrics(n, timeout=10) or {}
            out["snapshot_index"].append(
                None if "raftmq_snapshot_index" not in m
                else int(m["raftmq_snapshot_index"]))
            out["snapshot_bytes"].append(m.get("raftmq_snapshot_bytes"))
            out["store_bytes"].append(m.get("raftmq_store_disk_bytes"))
            out["applied_index"].append(m.get("raftmq_raft_applied_index"))
            out["store"].append({k: v for k, v in m.items()
                                 if k.startswith("raftmq_store_")})
            # background snapshots: fork stall, dump time, counts
            out["snapshot"].append({k: v for k, v in m.items()
                                    if k.startswith("raftmq_snapshot")})
        if not any(out["store"]):
            del out["store"]
        return out

    def wait_caught_up(self, node, t_start, timeout, res):
        """Polls until `node` is ready and its applied index reaches the
        leader's commit index; fills res with ready_s and caught_up_s
        (seconds since t_start) and leader_commit."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.check()
            now = time.monotonic() - t_start
            if res.get("ready_s") is None and \
                    self.http(node, "/healthz/ready", 2)[0] == 200:
                res["ready_s"] = round(now, 3)
            others = [n for n in self.cluster.nodes if n is not node]
            lead = None
            for n in others:
                m = self.metrics(n, 2)
                if m and m.get("raftmq_raft_is_leader") == 1:
                    lead = m
            mine = self.metrics(node, 2)
            if lead and mine and mine.get("raftmq_raft_applied_index", 0) \
                    >= lead["raftmq_raft_commit_index"]:
                res["caught_up_s"] = round(time.monotonic() - t_start, 3)
                res["leader_commit"] = int(lead["raftmq_raft_commit_index"])
                return True
            time.sleep(0.1)
        return False

    # --------------------------------------------------------------- run

    def start(self):
        self.doc["meta"]["load_before"] = loadavg()
        t = self.cluster.start()
        self.doc["meta"]["start_s"] = round(t, 3)
        self.sampler.start()
        for q in (QUEUE, CHECK_QUEUE):
            p = self.cli(["queue", "create", q])
            if p.returncode != 0:
                raise Aborted("queue create %s: %s" % (q, p.stderr.strip()))
        time.sleep(1)
        self.doc["meta"]["rss0_mib"] = self.cluster.rss_mib()
        st = self.node_stats()
        self.doc["steps"].append({
            "depth": 0, "rss_mib": self.doc["meta"]["rss0_mib"],
            "rss_peak_mib": self.sampler.peaks(),
            "snapshot_index": st["snapshot_index"],
            "snapshot_bytes": st["snapshot_bytes"],
            "snapshot": st["snapshot"],
            "store_bytes": st["store_bytes"],
            "note": "after start, before filling"})

    def guard_predicts_stop(self, target):
        """True (and a note) if filling to `target` would take a node past
        --max-rss-gib, from the growth per message so far."""
        rss0 = self.doc["meta"]["rss0_mib"]
        steps = rep.measured_steps(self.doc)
        if not steps or not self.depth:
            return False
        last = steps[-1]
        per_msg = max([(b - a) / self.depth for a, b in
                       zip(rss0, last["rss_mib"]) if a and b] or [0])
        peak = rep.max_of(self.sampler.peaks())
        predicted = peak + per_msg * (target - self.depth) * 1.1
        limit = self.a.max_rss_gib * 1024
        if predicted > limit:
            self.notes.append(
                "filling stopped at %s: the step to %s would take a node to "
                "about %.0f MiB (%.0f B per message so far), over "
                "--max-rss-gib %g" % (rep.fmt_count(self.depth),
                                      rep.fmt_count(target), predicted,
                                      per_msg * rep.MIB, self.a.max_rss_gib))
            return True
        return False

    def fill_step(self, target):
        """Fills the queue to `target` messages; returns False when the RSS
        guard stopped it."""
        a = self.a
        n = target - self.depth
        self.sampler.reset()
        limit = a.max_rss_gib * 1024
        probe_rate = 1000.0 / a.probe_interval_ms
        # W4 sizes its arrays by rate x seconds: allow for a fill at 500
        # msgs/s; the probe is stopped by SIGINT when the fill ends.
        probe = self.start_bench(
            ["W4", "--queue", PROBE_QUEUE, "--rate", "%g" % probe_rate,
             "--seconds", "%d" % (120 + n // 500), "--size", str(a.size)])
        time.sleep(0.3)  # the probe's consumer attaches first
        log("fill %s -> %s" % (rep.fmt_count(self.depth),
                               rep.fmt_count(target)))
        base = self.leader_changes()
        t0 = time.monotonic()
        fill = self.start_bench(
            ["W1", "--queue", QUEUE, "--keep-queue", "--count", str(n),
             "--size", str(a.size), "--producers", str(a.producers),
             "--inflight", str(a.inflight), "--broker-pids", self.pids()])
        note = None
        stopped = False
        while fill.poll() is None:
            time.sleep(0.25)
            big = rep.max_of(self.sampler.last)
            if big is not None and big > limit:
                stopped = True
                note = ("stopped by --max-rss-gib %g (a node at %.0f MiB)"
                        % (a.max_rss_gib, big))
                fill.kill()
            elif self.sampler.stop_reason or not all(
                    self.cluster.alive(x) for x in self.cluster.nodes):
                fill.kill()
        secs = time.monotonic() - t0
        self.check()  # a dead node: stop here (main kills the children)
        if probe.poll() is not None:
            note = ((note + "; ") if note else "") + \
                "the probe ended before the fill"
        else:
            probe.send_signal(signal.SIGINT)
        if stopped:
            fill.communicate()
            self.children.remove(fill)
            r = None
        else:
            r = self.bench_result(fill, "fill W1")
        pr = self.bench_result(probe, "probe W4", timeout=60)
        self.check()
        self.count_confirmed(r)
        depth = self.queue_depth()
        st = self.node_stats()
        rss = self.cluster.rss_mib()
        row = {"depth": depth, "target_depth": target,
               "published": depth - self.depth, "secs": round(secs, 3),
               "msgs_per_s": None, "rss_mib": rss,
               "rss_peak_mib": [rep.max_of([p, r]) for p, r in
                                zip(self.sampler.peaks(), rss)],
               "note": note, "leader_changes": self.changes_since(base)}
        if r:
            row.update({"msgs_per_s": r.get("msgs_per_s"),
                        "fill_p50_ms": r.get("p50_ms"),
                        "fill_p99_ms": r.get("p99_ms"),
                        "broker_cpu_us": r.get("broker_cpu_us_per_msg")})
        elif secs > 0:
            # Killed by the guard: the rate from the depth it reached.
            row["msgs_per_s"] = round((depth - self.depth) / secs)
        if pr:
            e = pr.get("extra") or {}
            row.update({"probe_p50_ms": e.get("confirm_p50_ms"),
                        "probe_p99_ms": e.get("confirm_p99_ms"),
                        "probe_msgs": e.get("confirmed"),
                        "probe_delivery_p99_ms": pr.get("p99_ms")})
        row.update(st)
        self.doc["steps"].append(row)
        log("  depth %s: %s msgs/s, probe p99 %s ms, RSS MiB %s" % (
            rep.fmt_count(depth), rep.fmt(row["msgs_per_s"]),
            rep.fmt(row.get("probe_p99_ms"), 1),
            rep.fmt_nodes(row["rss_mib"])))
        self.depth = depth
        return not stopped

    def restart_follower(self):
        a = self.a
        lead = self.leader()
        node = next(n for n in self.cluster.nodes if n is not lead)
        res = {"depth": self.depth, "node": node["id"]}
        log("restart: kill -9 follower %d at %s" % (
            node["id"], rep.fmt_count(self.depth)))
        self.sampler.reset()
        base = self.leader_changes()
        t_kill = time.monotonic()
        node["proc"].kill()
        node["proc"].wait()
        pub = self.start_bench(
            ["W1", "--queue", QUEUE, "--keep-queue", "--count",
             str(a.restart_publish), "--size", str(a.size), "--producers",
             str(a.producers), "--inflight", str(a.inflight)])
        r = self.bench_result(pub, "publish while a follower is down")
        self.count_confirmed(r)
        if r:
            res.update({"published": r.get("msgs"),
                        "publish_s": r.get("secs"),
                        "publish_msgs_per_s": r.get("msgs_per_s")})
        t_start = time.monotonic()
        res["down_s"] = round(t_start - t_kill, 3)
        self.cluster.start_node(node)
        if not self.wait_caught_up(node, t_start, a.catch_up_timeout, res):
            res["note"] = "not caught up within %d s" % a.catch_up_timeout
            self.ok = False
        res["rss_peak_mib"] = rep.max_of(self.sampler.peaks())
        res["leader_changes"] = self.changes_since(base)
        self.doc["restart"]["follower"] = res
        self.depth = self.queue_depth()
        log("  caught up after %s s" % rep.fmt(res.get("caught_up_s"), 2))

    def restart_node(self):
        a = self.a
        lead = self.leader()
        node = lead if a.restart_role == "leader" else next(
            n for n in self.cluster.nodes if n is not lead)
        res = {"depth": self.depth, "node": node["id"],
               "role": a.restart_role}
        log("restart: SIGTERM to the %s (node %d), then start it" % (
            a.restart_role, node["id"]))
        self.sampler.reset()
        base = self.leader_changes()
        t0 = time.monotonic()
        node["proc"].send_signal(signal.SIGTERM)
        try:
            node["proc"].wait(timeout=120)
        except subprocess.TimeoutExpired:
            node["proc"].kill()
            node["proc"].wait()
            res["note"] = "did not stop within 120 s: killed"
        res["stop_s"] = round(time.monotonic() - t0, 3)
        t_start = time.monotonic()
        self.cluster.start_node(node)
        deadline = t_start + a.catch_up_timeout
        while time.monotonic() < deadline:
            self.check()
            if self.http(node, "/healthz/ready", 2)[0] == 200:
                res["ready_s"] = round(time.monotonic() - t_start, 3)
                break
            time.sleep(0.05)
        while res.get("ready_s") is not None and time.monotonic() < deadline:
            p = self.cli(["--connect-timeout", "1000", "--request-timeout",
                          "3000", "publish", "--queue", CHECK_QUEUE,
                          "--body", "x"], timeout=10, node=node)
            if p.returncode == 0:
                res["serve_s"] = round(time.monotonic() - t_start, 3)
                break
            time.sleep(0.05)
        if res.get("serve_s") is None or not self.wait_caught_up(
                node, t_start, max(1, deadline - time.monotonic()), res):
            res["note"] = "did not serve and catch up within %d s" % \
                a.catch_up_timeout
            self.ok = False
        self.cluster.wait_ready(timeout=a.catch_up_timeout)
        res["rss_peak_mib"] = rep.max_of(self.sampler.peaks())
        res["leader_changes"] = self.changes_since(base)
        self.doc["restart"]["node"] = res
        log("  serves again after %s s" % rep.fmt(res.get("serve_s"), 2))

    def fill_shallow(self):
        """Creates the shallow queue and publishes --shallow messages."""
        p = self.cli(["queue", "create", SHALLOW_QUEUE])
        if p.returncode != 0:
            raise Aborted("queue create %s: %s" % (SHALLOW_QUEUE,
                                                   p.stderr.strip()))
        r = self.bench_result(self.start_bench(
            ["W1", "--queue", SHALLOW_QUEUE, "--keep-queue", "--count",
             str(self.a.shallow), "--size", str(self.a.size), "--producers",
             str(self.a.producers), "--inflight", str(self.a.inflight)]),
            "fill the shallow queue")
        if r is None or r.get("msgs") != self.a.shallow:
            raise Aborted("the shallow queue got %s of %d messages" % (
                r and r.get("msgs"), self.a.shallow))

    def drain(self, key, queue, msgs):
        """Drains the `msgs` messages of `queue` with W3. If the consumers
        give up (the cluster had no
        leader for longer than the client's request timeout), what is left
        is drained by another W3, up to DRAIN_ATTEMPTS in all, and the
        rate covers the whole drain, outage included."""
        log("drain (%s): %s msgs" % (key, rep.fmt_count(msgs)))
        self.cluster.wait_ready(timeout=self.a.catch_up_timeout)
        base = self.leader_changes()
        res = {"msgs": msgs, "attempts": 0, "consumers": self.a.consumers,
               "prefetch": self.a.prefetch}
        self.doc["drain"][key] = res
        left, cpu = msgs, 0.0
        self.sampler.reset()
        t0 = time.monotonic()
        while left > 0 and res["attempts"] < DRAIN_ATTEMPTS:
            res["attempts"] += 1
            p = self.start_bench(
                ["W3", "--queue", queue, "--count", str(left), "--size",
                 str(self.a.size), "--consumers", str(self.a.consumers),
                 "--prefetch", str(self.a.prefetch), "--broker-pids",
                 self.pids(), "--keep-queue"])
            r = self.bench_result(p, "drain %s" % key, must=False,
                                  timeout=600 + left // 1000)
            # From the first W3's start to the last one's end, less the 1.2 s
            # each W3 waits before and after its consumers run.
            wall = time.monotonic() - t0 - 1.2 * res["attempts"]
            self.check()
            if r and r.get("broker_cpu_s") is not None:
                cpu += r["broker_cpu_s"]
            if r and r.get("msgs") == left and \
                    (r.get("extra") or {}).get("queue_len_after") == 0:
                if res["attempts"] == 1:
                    res.update({"msgs_per_s": r.get("msgs_per_s"),
                                "secs": r.get("secs")})
                left = 0
                break
            log("  drain %s: attempt %d delivered %s of %d; waiting for "
                "the cluster" % (key, res["attempts"],
                                 r.get("msgs") if r else None, left))
            self.cluster.wait_ready(timeout=self.a.catch_up_timeout)
            left = self.queue_len(queue)
        res["leader_changes"] = self.changes_since(base)
        res["rss_peak_mib"] = rep.max_of(self.sampler.peaks())
        res["snapshot_index_after"] = self.node_stats()["snapshot_index"]
        res["broker_cpu_us"] = round(cpu / msgs * 1e6, 1) if msgs else None
        if res["attempts"] > 1:
            res["secs"] = round(wall, 3)
            res["msgs_per_s"] = round(msgs / wall) if wall > 0 else None
            res["note"] = (
                "%d W3 runs: the consumers of a run gave up (their requests "
                "timed out; %s leader changes during the drain); rate and "
                "time over the whole drain, outage included" % (
                    res["attempts"], res["leader_changes"]))
            self.notes.append("drain %s: %s" % (key, res["note"]))
        if left:
            self.fail("drain %s: %d messages still in the queue after %d "
                      "W3 runs" % (key, left, res["attempts"]))
        log("  %s msgs/s" % rep.fmt(res.get("msgs_per_s")))

    def run(self, steps):
        a = self.a
        self.start()
        restarted = False
        for target in steps:
            if target <= self.depth:
                continue
            if self.guard_predicts_stop(target):
                break
            full = self.fill_step(target)
            if not full:
                self.notes.append("filling stopped at %s by --max-rss-gib %g"
                                  % (rep.fmt_count(self.depth),
                                     a.max_rss_gib))
            if not a.no_restart and not restarted and (
                    not full or (a.restart_at and
                                 self.depth >= a.restart_at)):
                self.restart_follower()
                self.restart_node()
                restarted = True
            if not full:
                break
        if not a.no_restart and not restarted:
            self.restart_follower()
            self.restart_node()
        if not a.no_drain:
            self.check()
            self.cluster.wait_ready(timeout=a.catch_up_timeout)
            self.drain("deep", QUEUE, self.queue_len(QUEUE))
            self.fill_shallow()
            self.drain("shallow", SHALLOW_QUEUE, a.shallow)
        self.check()


def output(a, doc):
    doc["targets"] = rep.targets(doc)
    if a.chart:
        before = None
        if a.chart_before:
            with open(a.chart_before) as f:
                before = json.load(f)
        m = doc.get("meta") or {}
        rep.chart(doc, a.chart, "raftmq backlog: 3 local nodes, %s B bodies, "
                  "no consumer while filling (%s)" % (
                      m.get("size", 1024), m.get("date", "")), before)
        doc["notes"].append("chart: " + os.path.abspath(a.chart))
    if a.json:
        json.dump(doc, sys.stdout, indent=1)
        print()
    else:
        print(rep.text(doc))
    return 0 if doc.get("ok") else 1


def main():
    ap = argparse.ArgumentParser(
        description=" ".join(__doc__.split("\n\n")[0].split()),
        epilog="docs/benchmarks.md has the details.")
    ap.add_argument("--steps", help="depths to fill to, e.g. "
                    "0.2M,0.5M,1M,2M (default %s)" % FULL_STEPS)
    ap.add_argument("--step", type=parse_count,
                    help="with --depth: fill in steps of this many")
    ap.add_argument("--depth", type=parse_count, help="the deepest step")
    ap.add_argument("--quick", action="store_true",
                    help="CI smoke: steps %s, small restart and drain"
                    % QUICK_STEPS)
    ap.add_argument("--restart-at", type=parse_count,
                    help="do the restarts at the first step this deep "
                    "(default: at the deepest step)")
    ap.add_argument("--restart-publish", type=parse_count,
                    help="messages published while the follower is down "
                    "(200k; quick 5k)")
    ap.add_argument("--restart-role", choices=("leader", "follower"),
                    default="leader",
                    help="node restarted gracefully (leader)")
    ap.add_argument("--catch-up-timeout", type=int, default=900,
                    help="seconds a restarted node has to catch up (900)")
    ap.add_argument("--no-restart", action="store_true")
    ap.add_argument("--no-drain", action="store_true")
    ap.add_argument("--shallow", type=parse_count,
                    help="messages of the shallow drain (100k; quick 10k)")
    for flag, kind, default, what in (
            ("--size", int, 1024, "body bytes"),
            ("--producers", int, 1, "filling producers"),
            ("--inflight", int, 256, "unconfirmed publishes per producer"),
            ("--consumers", int, 4, "drain consumers"),
            ("--prefetch", int, 256, "prefetch per drain consumer"),
            ("--probe-interval-ms", float, 20,
             "one probe publish every this many ms"),
            ("--max-rss-gib", float, 6,
             "stop filling before a node passes this")):
        ap.add_argument(flag, type=kind, default=default,
                        help="%s (%g)" % (what, default))
    ap.add_argument("--node-arg", action="append", metavar="--KEY=VALUE",
                    help="extra raftmqd flag for every node (repeatable), "
                    "e.g. --node-arg=--memory-limit=16G")
    ap.add_argument("--label", help="name of this run in the chart")
    ap.add_argument("--json", action="store_true",
                    help="print one JSON document instead of the tables")
    ap.add_argument("--chart", metavar="FILE.png",
                    help="rate, probe p99 and RSS against depth")
    ap.add_argument("--chart-before", metavar="RUN.json",
                    help="also draw this earlier run (--json output) in "
                    "the chart")
    ap.add_argument("--report", metavar="RUN.json",
                    help="run nothing: report an earlier --json output")
    add_cluster_args(ap)
    ap.add_argument("--keep", action="store_true",
                    help="keep the data dirs and logs")
    a = ap.parse_args()
    if (a.chart or a.chart_before) and not rep.chart_available():
        sys.exit("backlog.py: --chart needs matplotlib: apt-get install -y "
                 "python3-matplotlib")
    if a.report:
        with open(a.report) as f:
            doc = json.load(f)
        doc.setdefault("notes", []).append("reported again from " + a.report)
        return output(a, doc)
    if a.steps and (a.step or a.depth):
        ap.error("--steps or --step/--depth, not both")
    if a.step or a.depth:
        if not (a.step and a.depth):
            ap.error("--step and --depth go together")
        steps = list(range(a.step, a.depth + 1, a.step))
        if steps[-1] != a.depth:
            steps.append(a.depth)
    else:
        try:
            steps = [parse_count(s) for s in (
                a.steps or (QUICK_STEPS if a.quick else FULL_STEPS)
            ).split(",")]
        except argparse.ArgumentTypeError as e:
            ap.error(str(e))
    steps = sorted(set(s for s in steps if s > 0))
    if not steps:
        ap.error("no step deeper than 0")
    if a.restart_publish is None:
        a.restart_publish = 5000 if a.quick else 200_000
    if a.shallow is None:
        a.shallow = 10_000 if a.quick else 100_000
    raftmqd = find_bin("RAFTMQD", "node/raftmqd", a.raftmqd)
    raftmq = find_bin("RAFTMQ", "client/cli/raftmq", a.raftmq)

    def on_term(signum, frame):
        raise KeyboardInterrupt()
    signal.signal(signal.SIGTERM, on_term)  # meson's timeout: clean up
    # Also when started in the background, where SIGINT comes ignored.
    signal.signal(signal.SIGINT, signal.default_int_handler)

    run = Run(a, raftmqd, raftmq)
    meta = run.doc["meta"]
    meta.update({"date": time.strftime("%Y-%m-%d %H:%M"), "quick": a.quick,
                 "steps": steps, "size": a.size, "producers": a.producers,
                 "inflight": a.inflight, "consumers": a.consumers,
                 "prefetch": a.prefetch,
                 "probe_interval_ms": a.probe_interval_ms,
                 "max_rss_gib": a.max_rss_gib,
                 "restart_publish": a.restart_publish,
                 "cpus": os.cpu_count(),
                 # relative to the source tree when inside it, so that a
                 # stored document names no path of this machine
                 "raftmqd": os.path.relpath(raftmqd, ROOT)
                 if raftmqd.startswith(ROOT + os.sep) else raftmqd,
                 "node_args": a.node_arg or [], "label": a.label})
    interrupted = False  # data dirs go, unless --keep
    try:
        run.run(steps)
    except (Aborted, RuntimeError) as e:
        run.ok = False
        run.notes.append("run stopped: %s" % e)
        log("run stopped: %s" % e)
    except KeyboardInterrupt:
        run.ok = False
        interrupted = True
        run.notes.append("run interrupted")
        log("interrupted: stopping the nodes")
    finally:
        for p in run.children:
            p.kill()
        run.sampler.done.set()
        keep = a.keep or (not run.ok and not interrupted)
        run.cluster.stop(keep=keep)
    meta["load_after"] = loadavg()
    run.doc["ok"] = run.ok
    run.notes.insert(0, "%s; cluster start to ready %s s; load average "
                     "before %s, after %s (%d CPUs)" % (
                         meta["date"], meta.get("start_s"),
                         meta["load_before"], meta["load_after"],
                         os.cpu_count()))
    if keep:
        run.notes.append("data dirs and node logs: " + run.cluster.dir)
    return output(a, run.doc)


if __name__ == "__main__":
    sys.exit(main())
