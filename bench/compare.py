#!/usr/bin/python3
"""raftmq vs the peers (RabbitMQ quorum queues, NATS JetStream): W1..W5.

Starts a fresh 3-node raftmq cluster on 127.0.0.1 (free ports, temporary data
dirs), runs `raftmq bench` for W1-1p, W1-4p, W2-1p, W2-4p, W3, W4 (--reps
times each, median [min-max]) and W5 (--w5-reps times, every run listed),
passing --broker-pids so broker CPU per message is measured, and prints one
markdown table in the format of ../shared/peers/RESULTS.md. With --peers it
also runs ../shared/peers/run-all.sh (when its Debian packages are installed)
and prints the ratios of raftmq against the best peer of the same run.

    bench/compare.py                 # full run (~6 min)
    bench/compare.py --quick         # CI smoke: small counts, one run each
    bench/compare.py --peers         # also the peers (about 11 more minutes)

Binaries: $RAFTMQD (else build/plain/node/raftmqd) and $RAFTMQ (else
build/plain/client/cli/raftmq), or --raftmqd / --raftmq. Exit status: 0, or
1 if a run failed or W5 lost a confirmed message. Only Debian's python3.
"""
import argparse
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PEERS = os.path.join(os.path.dirname(ROOT), "shared", "peers")

FULL = [  # (workload name, bench args)
    ("W1-1p", ["W1", "--producers", "1"]),
    ("W1-4p", ["W1", "--producers", "4"]),
    ("W2-1p", ["W2", "--producers", "1"]),
    ("W2-4p", ["W2", "--producers", "4"]),
    ("W3", ["W3"]),
    ("W4", ["W4"]),
]
QUICK_ARGS = {  # small counts for a smoke run
    "W1": ["--count", "5000"],
    "W2": ["--count", "2000"],
    "W3": ["--count", "5000"],
    "W4": ["--rate", "500", "--seconds", "2"],
    "W5": ["--seconds", "8", "--kill-after", "2"],
}


def log(msg):
    print(time.strftime("%H:%M:%S ") + msg, file=sys.stderr, flush=True)


def find_bin(env, rel, given):
    for p in [given, os.environ.get(env)] + [
            os.path.join(ROOT, d, rel)
            for d in ("build/plain", "build/dev", "build/node")]:
        if p and os.path.exists(p):
            return os.path.abspath(p)
    sys.exit("compare.py: %s not found: build it or set $%s" % (rel, env))


def free_port(taken):
    while True:
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        s.close()
        if port not in taken:
            taken.add(port)
            return port


class Cluster:
    """3 raftmqd processes on 127.0.0.1 with their own data dirs."""

    def __init__(self, raftmqd, base_port=None, n=3):
        self.raftmqd = raftmqd
        self.dir = tempfile.mkdtemp(prefix="raftmq-bench-")
        taken = set()
        self.nodes = []
        for i in range(1, n + 1):
            if base_port:
                ports = (base_port + i, base_port + 100 + i,
                         base_port + 200 + i)
            else:
                ports = tuple(free_port(taken) for _ in range(3))
            self.nodes.append({"id": i, "client": ports[0], "raft": ports[1],
                               "http": ports[2], "proc": None})

    def members(self):
        return ",".join("%d@127.0.0.1:%d@127.0.0.1:%d" % (
            n["id"], n["raft"], n["client"]) for n in self.nodes)

    def addresses(self):
        return ",".join("127.0.0.1:%d" % n["client"] for n in self.nodes)

    def start_node(self, n):
        d = os.path.join(self.dir, "node%d" % n["id"])
        log_f = open(d + ".log", "ab")
        n["proc"] = subprocess.Popen(
            [self.raftmqd, "--id", str(n["id"]), "--data-dir", d,
             "--raft-address", "127.0.0.1:%d" % n["raft"],
             "--client-address", "127.0.0.1:%d" % n["client"],
             "--http-address", "127.0.0.1:%d" % n["http"],
             "--members", self.members(), "--log-level", "warn"],
            stdout=log_f, stderr=log_f, stdin=subprocess.DEVNULL)
        log_f.close()

    def start(self):
        t0 = time.monotonic()
        for n in self.nodes:
            self.start_node(n)
        self.wait_ready()
        return time.monotonic() - t0

    def http(self, n, path):
        url = "http://127.0.0.1:%d%s" % (n["http"], path)
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                return r.status, r.read().decode()
        except urllib.error.HTTPError as e:
            return e.code, ""
        except OSError:
            return 0, ""

    def wait_ready(self, timeout=30):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if all(self.alive(n) and self.http(n, "/healthz/ready")[0] == 200
                   for n in self.nodes):
                return
            time.sleep(0.01)
        raise RuntimeError("cluster not ready within %d s (logs in %s)" %
                           (timeout, self.dir))

    def alive(self, n):
        return n["proc"] is not None and n["proc"].poll() is None

    def restart_dead(self):
        for n in self.nodes:
            if not self.alive(n):
                log("restarting node %d" % n["id"])
                self.start_node(n)
        self.wait_ready()

    def pids_arg(self):
        return ",".join("%d=%d" % (n["id"], n["proc"].pid)
                        for n in self.nodes if self.alive(n))

    def rss_mib(self):
        out = []
        for n in self.nodes:
            try:
                with open("/proc/%d/status" % n["proc"].pid) as f:
                    kb = next(int(l.split()[1]) for l in f
                              if l.startswith("VmRSS"))
                out.append("%.0f" % (kb / 1024))
            except (OSError, StopIteration):
                out.append("n/a")
        return " / ".join(out)

    def stop(self, keep=False):
        for n in self.nodes:
            if self.alive(n):
                n["proc"].send_signal(signal.SIGTERM)
        for n in self.nodes:
            if n["proc"] is not None:
                try:
                    n["proc"].wait(timeout=15)
                except subprocess.TimeoutExpired:
                    n["proc"].kill()
                    n["proc"].wait()
        if not keep:
            shutil.rmtree(self.dir, ignore_errors=True)


def run_bench(raftmq, cluster, name, args, run, results_f, extra):
    cmd = [raftmq, "--cluster", cluster.addresses(), "bench"] + args + [
        "--json", "--run", str(run), "--label", "raftmq",
        "--broker-pids", cluster.pids_arg()] + extra
    log("raftmq %s run %d" % (name, run))
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       text=True, timeout=900)
    if p.stderr.strip():
        for line in p.stderr.strip().splitlines():
            log("  " + line)
    r = None
    for line in p.stdout.splitlines():
        if line.startswith("{"):
            r = json.loads(line)
    if r is None:
        log("  FAILED (exit %d): no result" % p.returncode)
        return None, False
    r["workload"] = name
    r["label"] = "raftmq"
    results_f.write(json.dumps(r) + "\n")
    results_f.flush()
    return r, p.returncode == 0


# ------------------------------------------------------------------ table

def med(xs):
    return statistics.median(xs) if xs else None


def mmr(xs, dec):
    xs = [x for x in xs if x is not None]
    if not xs:
        return "-"
    f = "%%.%df" % dec
    if len(xs) == 1:
        return f % xs[0]
    return "%s [%s–%s]" % (f % med(xs), f % min(xs), f % max(xs))


def cpu_us(r):
    if r.get("broker_cpu_s") is None or not r.get("msgs"):
        return None
    return r["broker_cpu_s"] / r["msgs"] * 1e6


def client_pct(r):
    return r["client_cpu_s"] / r["secs"] * 100 if r.get("secs") else None


def table(results):
    groups, order = {}, []
    for r in results:
        k = (r["label"], r["workload"])
        if k not in groups:
            order.append(k)
        groups.setdefault(k, []).append(r)
    out = ["| system | workload | runs | msgs/s median [min–max] | MB/s | "
           "p50 ms | p99 ms | p99.9 ms | broker CPU µs/msg | "
           "client CPU % of wall |",
           "|---|---|---|---|---|---|---|---|---|---|"]
    for k in order:
        rs = groups[k]
        if k[1].startswith("W5"):
            continue
        lat = not k[1].startswith("W3")

        def col(key, dec, rs=rs):
            return mmr([r.get(key) for r in rs], dec)
        out.append("| %s | %s | %d | %s | %s | %s | %s | %s | %s | %s |" % (
            k[0], k[1], len(rs), col("msgs_per_s", 0), col("mb_per_s", 1),
            col("p50_ms", 2) if lat else "-",
            col("p99_ms", 2) if lat else "-",
            col("p999_ms", 2) if k[1].startswith("W4") else "-",
            mmr([cpu_us(r) for r in rs], 0),
            mmr([client_pct(r) for r in rs], 0)))
    if not any(k[1].startswith("W5") for k in order):
        return "\n".join(out)
    out += ["", "| system | W5 run | leader killed | recovery ms (kill → "
            "confirms resume) | kill → first confirm of a msg sent after "
            "kill, ms | kill → first confirm of any msg, ms | max confirm "
            "gap ms | published | confirmed | failed/timed out | consumed "
            "after | lost confirmed | duplicates |",
            "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for k in order:
        if not k[1].startswith("W5"):
            continue
        for r in groups[k]:
            e = r.get("extra", {})
            out.append("| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | "
                       "%s | **%s** | %s |" % (
                           k[0], r.get("run"), e.get("leader_killed"),
                           e.get("recovery_ms"),
                           e.get("kill_to_first_confirm_of_new_msg_ms"),
                           e.get("kill_to_first_confirm_ms"),
                           e.get("max_confirm_gap_ms"), e.get("published"),
                           e.get("confirmed"), e.get("failed_or_timed_out"),
                           e.get("consumed"), e.get("lost_confirmed"),
                           e.get("duplicates")))
    return "\n".join(out)


def ratios(results):
    """raftmq's medians over the best peer's, per workload."""
    by = {}
    for r in results:
        by.setdefault((r["label"], r["workload"]), []).append(r)
    labels = sorted({l for l, _ in by if l != "raftmq"})
    if not labels:
        return ""
    out = ["Medians. msgs/s and MB/s: higher is better; ms and µs: lower "
           "is better.", "",
           "| workload | metric | raftmq | best peer | raftmq / best |",
           "|---|---|---|---|---|"]
    wls = [w for l, w in by if l == "raftmq"]
    metrics = [("msgs_per_s", "msgs/s", True, lambda r: r.get("msgs_per_s")),
               ("mb_per_s", "MB/s", True, lambda r: r.get("mb_per_s")),
               ("p99_ms", "p99 ms", False, lambda r: r.get("p99_ms")),
               ("broker_cpu", "broker CPU µs/msg", False, cpu_us),
               ("recovery", "W5 recovery ms", False,
                lambda r: r.get("extra", {}).get("recovery_ms"))]
    for w in dict.fromkeys(wls):
        for key, name, higher, get in metrics:
            if w.startswith("W5") != (key == "recovery"):
                continue
            if key == "p99_ms" and w.startswith("W3"):
                continue
            if key == "mb_per_s" and not w.startswith("W2"):
                continue
            if key == "msgs_per_s" and w.startswith("W4"):
                continue
            mine = med([v for v in map(get, by[("raftmq", w)])
                        if v is not None])
            peers = []
            for l in labels:
                vs = [v for v in map(get, by.get((l, w), []))
                      if v is not None and v >= 0]
                if vs:
                    peers.append((med(vs), l))
            if mine is None or not peers:
                continue
            best = max(peers) if higher else min(peers)
            ratio = mine / best[0] if best[0] else float("inf")
            out.append("| %s | %s | %.2f | %.2f (%s) | %.2fx |" % (
                w, name, mine, best[0], best[1], ratio))
    return "\n".join(out)


# ------------------------------------------------------------------ peers

def peers_available():
    missing = [b for b in ("nats-server", "go") if not shutil.which(b)]
    if not os.path.exists("/usr/lib/rabbitmq/bin/rabbitmq-server"):
        missing.append("rabbitmq-server")
    return missing


def run_peers(out_dir, reps, w5_reps):
    """Runs ../shared/peers/run-all.sh; returns its results (or [])."""
    if not os.path.isdir(PEERS):
        log("peers: %s not present; skipped" % PEERS)
        return []
    missing = peers_available()
    if missing:
        log("peers: not runnable here (missing %s; install with %s/"
            "install-deps.sh, Debian packages); skipped" %
            (", ".join(missing), PEERS))
        return []
    env = dict(os.environ, REPS=str(reps), W5_REPS=str(w5_reps),
               SYSTEMS="rabbitmq nats", OUT=os.path.join(out_dir, "peers"))
    log("peers: running %s/run-all.sh (about 11 minutes)" % PEERS)
    p = subprocess.run([os.path.join(PEERS, "run-all.sh")], env=env,
                       stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                       text=True)
    if p.returncode != 0:
        log("peers: run-all.sh failed: %s" % p.stderr.strip()[-500:])
    return load_jsonl(os.path.join(out_dir, "peers", "results.jsonl"))


def load_jsonl(path):
    out = []
    try:
        with open(path) as f:
            for line in f:
                try:
                    out.append(json.loads(line))
                except ValueError:
                    pass
    except OSError:
        pass
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true",
                    help="small counts, one run each (CI smoke)")
    ap.add_argument("--peers", action="store_true",
                    help="also run ../shared/peers and print ratios")
    ap.add_argument("--reps", type=int, help="runs per W1..W4 (3)")
    ap.add_argument("--w5-reps", type=int, help="W5 runs (3)")
    ap.add_argument("--only", help="comma-separated workloads, e.g. "
                    "W1-1p,W3,W5")
    ap.add_argument("--raftmqd", help="broker binary ($RAFTMQD)")
    ap.add_argument("--raftmq", help="CLI binary ($RAFTMQ)")
    ap.add_argument("--base-port", type=int,
                    help="client ports base+1..3, Raft base+101..103, "
                    "HTTP base+201..203 (default: free ports)")
    ap.add_argument("--out", help="results dir (default: a temp dir)")
    ap.add_argument("--keep", action="store_true",
                    help="keep the data dirs and logs")
    a = ap.parse_args()
    reps = a.reps or (1 if a.quick else 3)
    w5_reps = a.w5_reps if a.w5_reps is not None else (1 if a.quick else 3)
    raftmqd = find_bin("RAFTMQD", "node/raftmqd", a.raftmqd)
    raftmq = find_bin("RAFTMQ", "client/cli/raftmq", a.raftmq)
    out_dir = a.out or tempfile.mkdtemp(prefix="raftmq-compare-")
    os.makedirs(out_dir, exist_ok=True)
    only = set(a.only.split(",")) if a.only else None
    res_path = os.path.join(out_dir, "results.jsonl")
    ok = True
    results = []
    notes = []

    def loadavg():
        with open("/proc/loadavg") as f:
            return " ".join(f.read().split()[:3])

    notes.append("load average before raftmq: %s (%d CPUs)" % (
        loadavg(), os.cpu_count()))
    cluster = Cluster(raftmqd, a.base_port)
    try:
        t = cluster.start()
        notes.append("raftmq cluster start to ready: %.2f s" % t)
        time.sleep(1)
        notes.append("RSS MiB idle after start: " + cluster.rss_mib())
        with open(res_path, "a") as rf:
            for name, args in FULL:
                if only and name not in only:
                    continue
                extra = QUICK_ARGS[args[0]] if a.quick else []
                for i in range(1, reps + 1):
                    time.sleep(0.5 if a.quick else 2)  # let things settle
                    r, good = run_bench(raftmq, cluster, name, args, i, rf,
                                        extra)
                    ok = ok and good
                    if r:
                        results.append(r)
                    if not cluster.alive(cluster.nodes[0]) or not all(
                            cluster.alive(n) for n in cluster.nodes):
                        log("a broker died: see %s" % cluster.dir)
                        ok = False
                        cluster.restart_dead()
            if not only or any(not w.startswith("W5") for w in only):
                notes.append("RSS MiB after W1-W4: " + cluster.rss_mib())
            if not only or "W5" in only:
                extra = QUICK_ARGS["W5"] if a.quick else []
                for i in range(1, w5_reps + 1):
                    time.sleep(0.5 if a.quick else 3)
                    r, good = run_bench(raftmq, cluster, "W5", ["W5"], i, rf,
                                        extra)
                    ok = ok and good
                    if r:
                        results.append(r)
                    t0 = time.monotonic()
                    cluster.restart_dead()
                    notes.append("W5 run %d: killed node back and cluster "
                                 "ready in %.2f s" % (
                                     i, time.monotonic() - t0))
    finally:
        cluster.stop(keep=a.keep or not ok)
        if a.keep or not ok:
            notes.append("raftmq data dirs and logs: " + cluster.dir)

    notes.append("load average after raftmq: %s" % loadavg())
    peer_results = []
    if a.peers:
        peer_results = run_peers(out_dir, reps, w5_reps)
        if peer_results:
            notes.append("load average after the peers: %s" % loadavg())
        if not peer_results and os.path.isdir(PEERS):
            ref = sorted(os.listdir(os.path.join(PEERS, "results")))
            if ref:
                path = os.path.join(PEERS, "results", ref[-1],
                                    "results.jsonl")
                peer_results = load_jsonl(path)
                notes.append("peers NOT measured in this run: ratios use "
                             "the stored peer results %s (compare with "
                             "care: a different run)" % path)

    print("\n".join("- " + n for n in notes))
    print()
    print(table(results + peer_results))
    rt = ratios(results + peer_results)
    if rt:
        print()
        print(rt)
    print()
    print("results: %s" % res_path)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
