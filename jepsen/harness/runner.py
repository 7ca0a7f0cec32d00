"""One test, and the matrix: set up, run, heal, drain, check, report.

A test: clean up leftovers of earlier runs -> build the network -> start
the nodes -> create the queues and topic -> workload + nemesis schedule +
crash monitor + resource sampler for --time seconds -> stop the nemesis
(heals its fault) and the workers -> heal everything and wait until every
member is ready under one leader -> drain every queue -> check (safety,
availability against its bound, resources) -> report -> tear down.

Only one harness runs at a time on a machine (the names, the subnet and
the ports are fixed): a lock file serializes runs.
"""
import fcntl
import json
import os
import random
import shutil
import time

from . import availability, checker, history as hist, nemesis, net, report
from . import resources, workload
from .cluster import CLIENT_PORT, Cluster, crash_backtrace, hang_report
from .workload import Workload

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))
LOCK = "/run/lock/raftmq-jepsen.lock"


def find_binary():
    p = os.environ.get("RAFTMQD")
    if p:
        return p
    for d in ("build/jepsen", "build/plain", "build/local"):
        c = os.path.join(ROOT, d, "node", "raftmqd")
        if os.path.exists(c):
            return c
    raise RuntimeError("raftmqd not found: build it (see jepsen/README.md) "
                       "or set RAFTMQD")


class Lock:
    def __init__(self, log, wait=4 * 3600):
        self.log = log
        self.wait = wait

    def __enter__(self):
        os.makedirs(os.path.dirname(LOCK), exist_ok=True)
        self.f = open(LOCK, "w")
        t0 = time.monotonic()
        while True:
            try:
                fcntl.flock(self.f, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return self
            except BlockingIOError:
                if time.monotonic() - t0 > self.wait:
                    raise RuntimeError("another jepsen run holds %s" % LOCK)
                if int(time.monotonic() - t0) % 30 == 0:
                    self.log("waiting for another jepsen run (%s)" % LOCK)
                time.sleep(1)

    def __exit__(self, *exc):
        self.f.close()


def run_test(opts, log):
    """Runs one test; returns its result dict (result["ok"] = passed)."""
    seed = opts.seed if opts.seed is not None else random.randrange(1 << 31)
    rng = random.Random(seed)
    name = "%s%s-%s-s%d" % (opts.nemesis, "-long" if opts.faults == "long"
                             else "", time.strftime("%Y%m%dT%H%M%S"), seed)
    store = os.path.join(opts.store, name)
    os.makedirs(store)
    log("== %s (%s faults): %s s at %s ops/s, seed %d -> %s" % (
        opts.nemesis, opts.faults, opts.time, opts.rate, seed, store))
    net.cleanup(log)
    net.setup(opts.nodes)
    # The election timeout is set explicitly: the availability bound is
    # computed from it.
    extra = ["--election-timeout-ms", str(opts.election_timeout)]
    if opts.snapshot:
        extra += ["--snapshot-threshold", str(opts.snapshot),
                  "--snapshot-trailing", str(max(1, opts.snapshot // 4))]
    cluster = Cluster(store, opts.binary or find_binary(), n=opts.nodes,
                      extra=extra)
    history = hist.History(os.path.join(store, "history.jsonl"))
    result_t0 = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(
        history.t0_wall)) + ".%03dZ" % (history.t0_wall % 1 * 1000)
    ctx = nemesis.Context(cluster, rng, log)
    result = {"nemesis": opts.nemesis, "seed": seed, "time": opts.time,
              "rate": opts.rate, "nodes": opts.nodes, "store": store,
              "faults_mode": opts.faults, "period": opts.period,
              "election_timeout_ms": opts.election_timeout,
              "attempt_timeout_s": opts.attempt_timeout,
              "snapshot_threshold": opts.snapshot or "raftmqd default",
              "standing_backlog": opts.backlog,
              "t0": result_t0, "problems": []}
    monitor = sched = wl = sampler = None
    try:
        cluster.start()
        if cluster.wait_healthy(90) is None:
            raise RuntimeError("cluster did not become ready")
        wl = Workload(cluster, history, opts.rate, producers=opts.producers,
                      consumers=opts.consumers, queues=opts.queues,
                      topic=not opts.no_topic, seed=rng.random(),
                      dedup_window_ms=(workload.SOAK_DEDUP_WINDOW_MS
                                       if getattr(opts, "soak", None)
                                       else workload.DEDUP_WINDOW_MS),
                      attempt_timeout=opts.attempt_timeout)
        wl.setup()
        if opts.backlog:
            log("filling a standing backlog of %d messages" % opts.backlog)
            result["standing_backlog_fill_s"] = round(
                wl.fill_backlog(opts.backlog, log=log), 1)
        monitor = nemesis.CrashMonitor(ctx, history)
        monitor.start()
        sampler = resources.Sampler(cluster, history,
                                    os.path.join(store, "resources.jsonl"),
                                    client_port=CLIENT_PORT)
        sampler.start()
        sched = nemesis.Schedule(ctx, history, nemesis.make(opts.nemesis),
                                 interval=opts.interval, quiet=opts.quiet,
                                 long_faults=opts.faults == "long",
                                 period=opts.period,
                                 end=time.monotonic() + opts.time)
        wl.start()
        sched.start()
        time.sleep(opts.time)
        log("stopping the nemesis and the workers")
        sched.stop()
        if sched.error:
            result["problems"].append("nemesis error: " + sched.error)
        stuck = wl.stop()
        if wl.errors:
            result["problems"].append("worker errors: %s" % wl.errors[:5])
        if stuck:
            result["problems"].append("client threads stuck: %s" % stuck)
        heal = nemesis.heal_all(ctx, history)
        log("healed: %s" % heal)
        rec = cluster.wait_healthy(120)
        result["recovery_s"] = None if rec is None else round(rec, 2)
        if rec is None:
            result["problems"].append("cluster not healthy 120 s after heal")
            result["hung"] = diagnose(cluster, store, log)
        log("draining (recovered in %s s)" % result["recovery_s"])
        if opts.backlog:
            depth = wl.backlog_depth()
            result["standing_backlog_depth"] = depth
            if depth != opts.backlog:
                result["problems"].append(
                    "the standing backlog holds %d messages, not %d" % (
                        depth, opts.backlog))
        left = wl.drain(timeout=opts.drain_timeout, log=log)
        result["drain_left"] = left
        if left:
            result["problems"].append("queues not drained: %s" % left)
            if not result.get("hung"):
                result["hung"] = diagnose(cluster, store, log)
        result["faults"] = sched.injected
    finally:
        if monitor:
            monitor.stop()
            result["crashes"] = monitor.crashes
        if sampler:
            sampler.stop()
        if sched and sched.is_alive():
            sched.stopping.set()
        if wl:
            wl.stop(timeout=10)
        cluster.shutdown()
        history.close()
        net.cleanup()
    ops = hist.load(os.path.join(store, "history.jsonl"))
    hist.write_edn(ops, os.path.join(store, "history.edn"))
    result["checker"] = checker.check(ops)
    result["faults"] = result.get("faults", 0)
    av = availability.check(ops, opts.nodes, opts.election_timeout)
    result["availability"] = av
    if not av["ok"]:
        result["problems"].append(
            "unavailable %.1f s with a majority up (t=%.1f-%.1f s, after %s)"
            ", above the bound of %.1f s" % (
                av["longest_s"], av["from_s"], av["to_s"], av["after"],
                av["bound_s"]))
    samples = sampler.samples if sampler else []
    result["resources"] = resources.stable(samples, opts.time)
    queue = checker.backlog(ops)
    result["backlog"] = resources.backlog_summary(queue, opts.time)
    if not result["resources"]["ok"]:
        result["problems"].append("node memory or fds not stable: %s" % {
            k: v for k, v in result["resources"]["nodes"].items()
            if not v.get("ok", True)})
    for crash in result.get("crashes") or []:
        bt = crash_backtrace(cluster.binary, crash["pid"],
                             os.path.join(store, "cores"))
        crash["backtrace"] = bt and os.path.basename(bt)
    if result.get("crashes"):
        result["problems"].append("nodes crashed: %s" % result["crashes"])
    result["ok"] = result["checker"]["valid"] and not result["problems"]
    with open(os.path.join(store, "results.json"), "w") as f:
        json.dump(result, f, indent=1, sort_keys=True)
    report.write(ops, result, store, "raftmq %s%s (seed %d)" % (
        opts.nemesis, ", long faults" if opts.faults == "long" else "",
        seed), samples, queue)
    if result["ok"] and not opts.keep_data:
        shutil.rmtree(os.path.join(store, "data"), ignore_errors=True)
    if not result["ok"]:
        save_bug(result, store, log)
    log(summary_line(result))
    return result


def diagnose(cluster, store, log):
    """For every running node whose loop does not answer /healthz/live,
    writes hang-<node>.txt (see cluster.hang_report); returns their names."""
    hung = []
    for x in cluster.nodes:
        if x.alive() and not x.live():
            path = os.path.join(store, "hang-%s.txt" % x.name)
            with open(path, "w") as f:
                f.write(hang_report(x))
            log("node %s does not answer: %s" % (x.name, path))
            hung.append(x.name)
    return hung


def save_bug(result, store, log):
    """Keeps the evidence of a failed test under build/jepsen-bugs/."""
    dest = os.path.join(ROOT, "build", "jepsen-bugs", os.path.basename(store))
    os.makedirs(dest, exist_ok=True)
    for f in os.listdir(store):
        p = os.path.join(store, f)
        if os.path.isfile(p):
            shutil.copy2(p, dest)
    result["bug_dir"] = dest
    log("evidence saved to %s" % dest)


HEADER = ("nemesis", "faults", "ok", "ops", "acked", "injected", "lost",
          "unexp", "dup", "recov", "failed-deq", "order", "unavail_s",
          "bound_s", "crashes")


def summary_row(r):
    c = r["checker"]
    av = r["availability"]
    lost = c["lost_count"]
    if r.get("drain_left"):
        # Not a verdict: the values may still sit in the queues.
        lost = "%d (not drained)" % lost
    return (r["nemesis"], r["faults_mode"], "PASS" if r["ok"] else "FAIL",
            c["ops"], c["enqueue"]["ok"], r["faults"], lost,
            c["unexpected_count"], c["duplicated_count"],
            c["recovered_count"], c["failed_dequeued_count"],
            c["order_violation_count"],
            "%.2f%s" % (av["longest_s"], "" if av["ok"] else " (over)"),
            av["bound_s"], len(r.get("crashes") or []))


def summary_line(r):
    return " ".join("%s=%s" % kv for kv in zip(HEADER, summary_row(r))) + \
        ("  problems: %s" % "; ".join(r["problems"]) if r["problems"] else "")


def markdown_table(results):
    lines = ["| " + " | ".join(HEADER) + " |",
             "|" + "---|" * len(HEADER)]
    for r in results:
        lines.append("| " + " | ".join(str(x) for x in summary_row(r)) + " |")
    return "\n".join(lines)
