"""The report: PNG plots (matplotlib, Agg backend) and one HTML page.

Like Jepsen's perf graphs: throughput (completions per second by operation
and outcome) and latency (each completion at its time, log scale) over the
test, with every fault window shaded and labelled. Crashes noticed by the
monitor are drawn as red vertical lines.
"""
import html
import json
import os

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

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


def _table(rows):
    return "<table>%s</table>" % "".join(
        "<tr><th>%s</th><td>%s</td></tr>" % (html.escape(str(k)),
                                            html.escape(str(v)))
        for k, v in rows)


def write(ops, result, out_dir, title):
    plot(ops, out_dir, title)
    c = result["checker"]
    verdict = "VALID" if result["ok"] else "INVALID"
    rows = [
        ("verdict", verdict),
        ("nemesis", result["nemesis"]), ("seed", result["seed"]),
        ("time / rate", "%s s / %s ops/s" % (result["time"], result["rate"])),
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
        ("longest unavailability", "%.2f s (from t=%.1f s)" % (
            c["longest_unavailability_s"], c["longest_unavailability_at_s"])),
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
<h2>Fault windows (s)</h2><table><tr><th>start</th><th>end</th>
<th>fault</th></tr>%(faults)s</table>
<h2>Files</h2><p><a href="history.jsonl">history.jsonl</a>
<a href="history.edn">history.edn</a> <a href="results.json">results.json</a>
%(logs)s</p>
<h2>Checker result</h2><pre>%(json)s</pre>
</body></html>
""" % {"title": html.escape(title), "verdict": verdict,
       "table": _table(rows), "faults": faults, "logs": logs,
       "json": html.escape(json.dumps(result, indent=1, sort_keys=True))}
    path = os.path.join(out_dir, "index.html")
    with open(path, "w") as f:
        f.write(page)
    return path
