"""The report: PNG plots (matplotlib, Agg backend) and one HTML page.

Like Jepsen's perf graphs: throughput (completions per second by operation
and outcome) and latency (each completion at its time, log scale) over the
test, with every fault window shaded and labelled. Crashes noticed by the
monitor are drawn as red vertical lines. availability.png draws the
availability figure (availability.py): the seconds since the last confirmed
enqueue, against the bound, with the stretches in which no majority could
work greyed out. resources.png draws every node's RSS and open fds.
"""
import html
import json
import os

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from . import availability, resources  # noqa: E402
from .checker import _completions  # noqa: E402

COLORS = {"ok": "#2a9d3a", "fail": "#d62728", "info": "#ff9f1c"}
FAULT_COLORS = ["#9ecae1", "#fdae6b", "#a1d99b", "#bcbddc", "#fdd0a2",
                "#c7e9c0", "#d9d9d9", "#fcbba1", "#c6dbef"]


def fault_windows(ops):
    """[(start s, end s, fault name)] from the nemesis start/stop ops."""
    out, open_ = [], {}
    end = max((o["time"] for o in ops), default=0) / 1e9
    for o in ops:
        if o.get("process") != "nemesis" or o["type"] != "info":
            continue
        if o["f"] == "start":
            open_[o.get("fault")] = o["time"] / 1e9
        elif o["f"] == "stop" and o.get("fault") in open_:
            out.append((open_.pop(o["fault"]), o["time"] / 1e9, o["fault"]))
    out += [(t, end, f) for f, t in open_.items()]
    return out


def crash_times(ops):
    return [o["time"] / 1e9 for o in ops
            if o.get("process") == "nemesis" and o["f"] == "crash"
            and o["type"] == "info"]


def _shade(ax, windows, crashes):
    names = sorted({w[2] for w in windows})
    color = {n: FAULT_COLORS[i % len(FAULT_COLORS)]
             for i, n in enumerate(names)}
    seen = set()
    for a, b, n in windows:
        ax.axvspan(a, b, color=color[n], alpha=0.45, lw=0,
                   label=None if n in seen else n)
        seen.add(n)
    for t in crashes:
        ax.axvline(t, color="red", lw=1.2)


def plot(ops, out_dir, title):
    pairs = [(i, c) for i, c in _completions(ops)
             if c is not None and i["f"] in ("enqueue", "dequeue")]
    windows, crashes = fault_windows(ops), crash_times(ops)
    end = max((o["time"] for o in ops), default=0) / 1e9
    paths = {}

    # Throughput: completions per 1 s bucket, per (f, type).
    fig, ax = plt.subplots(figsize=(11, 4))
    _shade(ax, windows, crashes)
    nb = int(end) + 1
    for f, style in (("enqueue", "-"), ("dequeue", "--")):
        for t in ("ok", "fail", "info"):
            counts = [0] * nb
            for i, c in pairs:
                if i["f"] == f and c["type"] == t:
                    counts[min(nb - 1, int(c["time"] / 1e9))] += 1
            if any(counts):
                ax.plot(range(nb), counts, style, color=COLORS[t], lw=1.2,
                        label="%s %s" % (f, t))
    ax.set_xlabel("time (s)")
    ax.set_ylabel("operations / s")
    ax.set_title("%s: throughput" % title)
    ax.legend(fontsize=7, loc="upper right", ncol=2)
    ax.set_xlim(0, end)
    fig.tight_layout()
    paths["rate"] = os.path.join(out_dir, "rate.png")
    fig.savefig(paths["rate"], dpi=90)
    plt.close(fig)

    # Latency: one point per completion.
    fig, ax = plt.subplots(figsize=(11, 4))
    _shade(ax, windows, crashes)
    for f, marker in (("enqueue", "o"), ("dequeue", "^")):
        for t in ("ok", "fail", "info"):
            xs = [c["time"] / 1e9 for i, c in pairs
                  if i["f"] == f and c["type"] == t]
            ys = [max(0.05, (c["time"] - i["time"]) / 1e6) for i, c in pairs
                  if i["f"] == f and c["type"] == t]
            if xs:
                ax.scatter(xs, ys, s=4, marker=marker, color=COLORS[t],
                           alpha=0.6, label="%s %s" % (f, t))
    ax.set_yscale("log")
    ax.set_xlabel("time (s)")
    ax.set_ylabel("latency (ms)")
    ax.set_title("%s: latency" % title)
    ax.legend(fontsize=7, loc="upper right", ncol=2, markerscale=3)
    ax.set_xlim(0, end)
    fig.tight_layout()
    paths["latency"] = os.path.join(out_dir, "latency.png")
    fig.savefig(paths["latency"], dpi=90)
    plt.close(fig)
    return paths


def plot_availability(ops, result, out_dir, title):
    """Seconds since the last confirmed enqueue over the test, with the
    bound; the stretches without a possible majority are grey."""
    av = result["availability"]
    pts = availability.since_last_ok(ops, result["nodes"])
    fig, ax = plt.subplots(figsize=(11, 3.5))
    _shade(ax, fault_windows(ops), crash_times(ops))
    for a, b in av["no_majority"]:
        ax.axvspan(a, b, facecolor="none", edgecolor="#555555",
                   hatch="///", lw=0)
    if pts:
        ax.plot([p[0] for p in pts], [p[1] if p[2] else float("nan")
                                      for p in pts],
                color="#1f3b73", lw=1.2, label="with a majority")
        ax.plot([p[0] for p in pts], [p[1] if not p[2] else float("nan")
                                      for p in pts],
                color="#999999", lw=1, label="no majority possible")
    ax.axhline(av["bound_s"], color="#d62728", ls="--", lw=1.2,
               label="bound %.1f s" % av["bound_s"])
    if av["from_s"] is not None:
        ax.annotate("%.2f s" % av["longest_s"],
                    xy=(av["to_s"], av["longest_s"]),
                    xytext=(4, 4), textcoords="offset points", fontsize=8,
                    color="#d62728" if not av["ok"] else "#1f3b73")
    ax.set_xlabel("time (s)")
    ax.set_ylabel("s since last confirmed enqueue")
    ax.set_title("%s: unavailability (longest %.2f s, bound %.1f s: %s)" % (
        title, av["longest_s"], av["bound_s"],
        "within" if av["ok"] else "OVER"))
    ax.legend(fontsize=7, loc="upper right", ncol=2)
    end = max((o["time"] for o in ops), default=0) / 1e9
    ax.set_xlim(0, end)
    ax.set_ylim(0, max(av["bound_s"], av["longest_s"]) * 1.25)
    fig.tight_layout()
    path = os.path.join(out_dir, "availability.png")
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def plot_resources(samples, ops, out_dir, title, queue=()):
    """RSS and open fds of every node over the test (a restart is a new
    process: its line starts again), and the queues' backlog."""
    fig, (a1, a2, a3) = plt.subplots(3, 1, figsize=(11, 7.5), sharex=True)
    for ax in (a1, a2, a3):
        _shade(ax, fault_windows(ops), crash_times(ops))
    a3.plot([q[0] for q in queue], [q[1] for q in queue], color="#444444",
            lw=1)
    a3.set_ylabel("backlog (messages)")
    for name in sorted({s["node"] for s in samples}):
        mine = [s for s in samples if s["node"] == name]
        xs = [s["t"] for s in mine]
        line, = a1.plot(xs, [s["rss_kb"] / 1024.0 for s in mine], lw=1,
                        label=name)
        heap = [s for s in mine if "heap_kb" in s]
        a1.plot([s["t"] for s in heap], [s["heap_kb"] / 1024.0 for s in heap],
                lw=1, ls=":", color=line.get_color())
        a2.plot(xs, [s["fds"] for s in mine], lw=1, color=line.get_color())
        a2.plot(xs, [s["fds"] - s.get("sessions", 0) for s in mine], lw=1,
                ls=":", color=line.get_color())
    a1.set_ylabel("RSS (dotted:\nheap in use, MiB)")
    a2.set_ylabel("open fds (dotted:\nwithout client sessions)")
    a3.set_xlabel("time (s)")
    a1.set_title("%s: node resources" % title)
    a1.legend(fontsize=7, loc="upper left", ncol=5)
    fig.tight_layout()
    path = os.path.join(out_dir, "resources.png")
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def _table(rows):
    return "<table>%s</table>" % "".join(
        "<tr><th>%s</th><td>%s</td></tr>" % (html.escape(str(k)),
                                            html.escape(str(v)))
        for k, v in rows)


def write(ops, result, out_dir, title, samples=(), queue=()):
    plot(ops, out_dir, title)
    plot_availability(ops, result, out_dir, title)
    if samples:
        plot_resources(samples, ops, out_dir, title, queue)
    c = result["checker"]
    av = result["availability"]
    res = result.get("resources") or {}
    verdict = "VALID" if result["ok"] else "INVALID"
    rows = [
        ("verdict", verdict),
        ("nemesis", result["nemesis"]), ("seed", result["seed"]),
        ("time / rate", "%s s / %s ops/s" % (result["time"], result["rate"])),
        ("t = 0 s in the node logs", result.get("t0")),
        ("operations", c["ops"]),
        ("enqueues ok / fail / info", "%d / %d / %d" % (
            c["enqueue"]["ok"], c["enqueue"]["fail"], c["enqueue"]["info"])),
        ("faults injected", result["faults"]),
        ("lost", c["lost_count"]), ("unexpected", c["unexpected_count"]),
        ("failed but dequeued", c["failed_dequeued_count"]),
        ("duplicated", c["duplicated_count"]),
        ("recovered", c["recovered_count"]),
        ("first-delivery order violations", c["order_violation_count"]),
        ("lost by node", c["lost_by_node"] or "-"),
        ("longest unavailability with a majority up",
         "%.2f s, bound %.1f s (2 x %d ms + 1 s): %s" % (
             av["longest_s"], av["bound_s"], av["election_timeout_ms"],
             "within" if av["ok"] else "OVER THE BOUND")),
        ("  where", "-" if av["from_s"] is None else
         "t=%.1f-%.1f s, after %s" % (av["from_s"], av["to_s"],
                                      av["after"])),
        ("  longest per fault", ", ".join(
            "%s %.2f s" % kv for kv in av["by_fault"].items()) or "-"),
        ("  time with a majority / without",
         "%.0f s / %s" % (av["majority_s"], ", ".join(
             "%.1f-%.1f" % tuple(w) for w in av["no_majority"]) or "-")),
        ("longest unavailability, all of the run", "%.2f s (from t=%.1f s)"
         % (c["longest_unavailability_s"],
            c["longest_unavailability_at_s"])),
        ("fault durations", "%s%s" % (result.get("faults_mode"), (
            ", a fault every %g s" % result["period"])
            if result.get("period") else "")),
        ("node resources", "; ".join(
            "%s: RSS max %.0f MiB, fds max %d%s%s" % (
                n, v["rss_max_kb"] / 1024.0, v["fds_max"],
                "" if "ok" not in v else
                " (final %.0f / reference %.0f MiB, fds %d / %d: %s)" % (
                    v["rss_final_kb"] / 1024.0, v["rss_ref_kb"] / 1024.0,
                    v["fds_final"], v["fds_ref"],
                    "stable" if v["ok"] else "NOT STABLE"),
                "" if not v.get("heap_final_kb") or not v.get("heap_ref_kb")
                else ", heap in use final %.1f / reference %.1f MiB" % (
                    v["heap_final_kb"] / 1024.0, v["heap_ref_kb"] / 1024.0))
            for n, v in sorted(res.get("nodes", {}).items())) or "-"),
        ("queue backlog (messages)", "max %(max)s, at the end %(end)s; "
         "peak %(ref_max)s in the reference window, %(final_max)s in the "
         "final one" % result["backlog"] if result.get("backlog") else "-"),
        ("resource bound", res.get("bound") if res.get("judged")
         else "not judged (run shorter than %d s)"
         % resources.MIN_JUDGED_S),
        ("recovery after heal", result.get("recovery_s")),
        ("drain leftovers", result.get("drain_left") or "-"),
        ("crashes", result.get("crashes") or "-"),
        ("problems", "; ".join(result.get("problems") or []) or "-"),
    ]
    windows = fault_windows(ops)
    faults = "".join("<tr><td>%.1f</td><td>%.1f</td><td>%s</td></tr>" % w
                     for w in windows)
    logs = "".join('<a href="%s">%s</a> ' % (f, f)
                   for f in sorted(os.listdir(out_dir))
                   if f.startswith("node") and f.endswith(".log"))
    page = """<!doctype html><html><head><meta charset="utf-8">
<title>%(title)s</title><style>
body{font-family:sans-serif;margin:1.5em;max-width:1100px}
table{border-collapse:collapse;margin:.5em 0}
td,th{border:1px solid #ccc;padding:2px 8px;text-align:left}
.VALID{color:#2a9d3a}.INVALID{color:#d62728}
pre{background:#f6f6f6;padding:.5em;overflow:auto;max-height:30em}
</style></head><body>
<h1>%(title)s: <span class="%(verdict)s">%(verdict)s</span></h1>
%(table)s
<h2>Throughput</h2><img src="rate.png" alt="throughput">
<h2>Latency</h2><img src="latency.png" alt="latency">
<h2>Unavailability</h2><img src="availability.png" alt="unavailability">
%(resources)s
<h2>Fault windows (s)</h2><table><tr><th>start</th><th>end</th>
<th>fault</th></tr>%(faults)s</table>
<h2>Files</h2><p><a href="history.jsonl">history.jsonl</a>
<a href="history.edn">history.edn</a> <a href="results.json">results.json</a>
<a href="resources.jsonl">resources.jsonl</a>
%(logs)s</p>
<h2>Checker result</h2><pre>%(json)s</pre>
</body></html>
""" % {"title": html.escape(title), "verdict": verdict,
       "table": _table(rows), "faults": faults, "logs": logs,
       "resources": '<h2>Node resources</h2><img src="resources.png" '
                    'alt="node resources">' if samples else "",
       "json": html.escape(json.dumps(result, indent=1, sort_keys=True))}
    path = os.path.join(out_dir, "index.html")
    with open(path, "w") as f:
        f.write(page)
    return path
