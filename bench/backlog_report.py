"""How bench/backlog.py reports a run: the targets of issue 14 part 5, the
tables, the --json document and the --chart line chart.

A run is one document (a dict, the --json output): meta, steps (one per
fill step), restart (follower catch-up, node restart), drain (at depth and
shallow), notes. No I/O besides the chart file; backlog.py runs things, this
module reports.
"""

GIB = 1024 * 1024 * 1024
MIB = 1024 * 1024

# The targets of issue 14 part 5 (3-node local cluster, 1 KiB bodies).
TARGET_DEPTH = 10_000_000
RSS_MAX_MIB = 2048          # RSS per node at any depth
BYTES_PER_MSG = 150         # memory per queued message beyond fixed costs
RATE_KEEP = 0.9             # publish rate at depth / at the first step
P99_GROWTH = 1.5            # probe p99 at depth / at the first step
CATCH_UP_S = 10.0           # follower catch-up beyond the replication time
RESTART_S = 10.0            # node restarted at depth serves again
DRAIN_KEEP = 0.9            # drain rate at depth / shallow drain rate


def fmt_count(n):
    """2000000 -> '2M', 200000 -> '0.2M', 20000 -> '20k'."""
    if n is None:
        return "-"
    if n >= 100_000:
        return ("%.2f" % (n / 1e6)).rstrip("0").rstrip(".") + "M"
    if n >= 1000:
        return ("%.1f" % (n / 1e3)).rstrip("0").rstrip(".") + "k"
    return str(n)


def fmt(v, dec=0, unit=""):
    if v is None:
        return "-"
    return ("%." + str(dec) + "f%s") % (v, unit)


def fmt_nodes(xs, dec=0, scale=1):
    return " / ".join("-" if x is None else ("%." + str(dec) + "f") %
                      (x / scale) for x in xs)


def max_of(xs):
    xs = [x for x in xs if x is not None]
    return max(xs) if xs else None


def measured_steps(doc):
    """Steps that filled (those with a publish rate)."""
    return [s for s in doc.get("steps", []) if s.get("msgs_per_s")]


# ---------------------------------------------------------------- targets

def targets(doc):
    """[{target, value, reference, status}] with status met, missed or n/a
    (not measured in this run)."""
    out = []

    def add(name, value, ref, ok):
        out.append({"target": name, "value": value, "reference": ref,
                    "status": "n/a" if ok is None else
                    "met" if ok else "missed"})

    steps = doc.get("steps", [])
    filled = measured_steps(doc)
    deepest = steps[-1] if steps else None
    depth = deepest["depth"] if deepest else None
    add("backlog of 10 M messages reached", fmt_count(depth),
        fmt_count(TARGET_DEPTH),
        None if depth is None else depth >= TARGET_DEPTH)

    peak = max_of([max_of(s.get("rss_peak_mib") or s.get("rss_mib") or [])
                   for s in steps] +
                  [x.get("rss_peak_mib") for x in
                   list((doc.get("restart") or {}).values()) +
                   list((doc.get("drain") or {}).values())])
    add("RSS per node <= 2 GiB at any depth (max node, peak sampled while "
        "filling, restarting and draining)",
        fmt(peak, 0, " MiB"), "%d MiB" % RSS_MAX_MIB,
        None if peak is None else peak <= RSS_MAX_MIB)

    rss0 = (doc.get("meta") or {}).get("rss0_mib")
    per_msg = None
    if rss0 and deepest and depth and deepest.get("rss_mib"):
        growth = [b - a for a, b in zip(rss0, deepest["rss_mib"])
                  if a is not None and b is not None]
        if growth:
            per_msg = max(growth) * MIB / depth
    add("memory per queued message <= 150 B beyond fixed costs "
        "((RSS at depth - RSS at depth 0) / depth, max node)",
        fmt(per_msg, 0, " B"), "%d B" % BYTES_PER_MSG,
        None if per_msg is None else per_msg <= BYTES_PER_MSG)

    first, last = (filled[0], filled[-1]) if len(filled) >= 2 else (None,
                                                                    None)
    add("publish msgs/s at the deepest step >= 90 % of the first step's",
        "%s at %s" % (fmt(last["msgs_per_s"]), fmt_count(last["depth"]))
        if last else "-",
        "0.9 x %s at %s" % (fmt(first["msgs_per_s"]),
                            fmt_count(first["depth"])) if first else "-",
        None if not first else
        last["msgs_per_s"] >= RATE_KEEP * first["msgs_per_s"])

    p_first = first.get("probe_p99_ms") if first else None
    p_last = last.get("probe_p99_ms") if last else None
    add("probe p99 at the deepest step <= 1.5x the first step's",
        "%s ms" % fmt(p_last, 1) if p_last is not None else "-",
        "1.5 x %s ms" % fmt(p_first, 1) if p_first is not None else "-",
        None if p_first is None or p_last is None else
        p_last <= P99_GROWTH * p_first)

    f = (doc.get("restart") or {}).get("follower")
    ok = None
    if f and f.get("caught_up_s") is not None:
        ok = f["caught_up_s"] <= CATCH_UP_S + (f.get("publish_s") or 0)
    elif f:
        ok = False  # it never caught up
    add("follower killed at depth catches up in <= 10 s + replication time",
        "%s s" % fmt((f or {}).get("caught_up_s"), 1),
        "10 + %s s" % fmt((f or {}).get("publish_s"), 1) if f else "-", ok)

    n = (doc.get("restart") or {}).get("node")
    add("node restarted at depth serves again in <= 10 s "
        "(ready, and a publish through it succeeds)",
        "%s s" % fmt((n or {}).get("serve_s"), 1), "%.0f s" % RESTART_S,
        None if not n else n.get("serve_s") is not None and
        n["serve_s"] <= RESTART_S)

    d = doc.get("drain") or {}
    deep, shallow = d.get("deep"), d.get("shallow")
    ok = None
    if deep and shallow and shallow.get("msgs_per_s"):
        ok = (deep.get("msgs_per_s") or 0) >= \
            DRAIN_KEEP * shallow["msgs_per_s"]
    add("drain at depth >= 90 % of a shallow queue's drain",
        "%s msgs/s (%s msgs)" % (fmt(deep.get("msgs_per_s")),
                                 fmt_count(deep.get("msgs")))
        if deep else "-",
        "0.9 x %s msgs/s (%s msgs)" % (fmt(shallow.get("msgs_per_s")),
                                       fmt_count(shallow.get("msgs")))
        if shallow else "-", ok)
    return out


# ----------------------------------------------------------------- tables

def steps_table(doc):
    rows = ["| depth | publish msgs/s | probe p50 / p99 ms | RSS MiB max "
            "(per node) | peak RSS MiB (max node) | snapshot index per "
            "node | snapshot MiB per node | store MiB per node | leader "
            "changes | note |",
            "|---|---|---|---|---|---|---|---|---|---|"]
    for s in doc.get("steps", []):
        rss = s.get("rss_mib") or []
        store = s.get("store_bytes")
        rows.append("| %s | %s | %s / %s | %s (%s) | %s | %s | %s | %s | %s "
                    "| %s |"
                    % (fmt_count(s.get("depth")), fmt(s.get("msgs_per_s")),
                       fmt(s.get("probe_p50_ms"), 1),
                       fmt(s.get("probe_p99_ms"), 1),
                       fmt(max_of(rss)), fmt_nodes(rss),
                       fmt(max_of(s.get("rss_peak_mib") or [])),
                       fmt_nodes(s.get("snapshot_index") or []),
                       fmt_nodes(s.get("snapshot_bytes") or [], 1, MIB),
                       "n/a" if not store or all(x is None for x in store)
                       else fmt_nodes(store, 1, MIB),
                       fmt(s.get("leader_changes")), s.get("note") or ""))
    return "\n".join(rows)


def restart_lines(doc):
    r = doc.get("restart") or {}
    out = []
    f = r.get("follower")
    if f:
        out.append(
            "- follower kill -9 at %s: node %s down %s s while %s msgs were "
            "published (%s s, %s msgs/s); restarted: ready after %s s, "
            "caught up (applied index >= the leader's commit index %s) "
            "after %s s; peak RSS %s MiB; %s leader changes%s" % (
                fmt_count(f.get("depth")), f.get("node"),
                fmt(f.get("down_s"), 1), fmt_count(f.get("published")),
                fmt(f.get("publish_s"), 1), fmt(f.get("publish_msgs_per_s")),
                fmt(f.get("ready_s"), 2), f.get("leader_commit"),
                fmt(f.get("caught_up_s"), 2), fmt(f.get("rss_peak_mib")),
                fmt(f.get("leader_changes")),
                "; " + f["note"] if f.get("note") else ""))
    n = r.get("node")
    if n:
        out.append(
            "- graceful restart of the %s (node %s) at %s: stopped in %s s; "
            "after start: ready %s s, a publish through it succeeded %s s, "
            "caught up %s s; peak RSS %s MiB; %s leader changes%s" % (
                n.get("role"), n.get("node"), fmt_count(n.get("depth")),
                fmt(n.get("stop_s"), 2), fmt(n.get("ready_s"), 2),
                fmt(n.get("serve_s"), 2), fmt(n.get("caught_up_s"), 2),
                fmt(n.get("rss_peak_mib")), fmt(n.get("leader_changes")),
                "; " + n["note"] if n.get("note") else ""))
    d = doc.get("drain") or {}
    for key, what in (("deep", "drain at depth"),
                      ("shallow", "drain of a shallow queue")):
        x = d.get(key)
        if x:
            out.append("- %s: %s msgs at %s msgs/s (%s s, %s consumers, "
                       "prefetch %s, broker CPU %s us/msg, %s leader "
                       "changes, snapshot index per node after it %s, peak "
                       "RSS %s MiB)%s" % (
                           what, fmt_count(x.get("msgs")),
                           fmt(x.get("msgs_per_s")), fmt(x.get("secs"), 1),
                           x.get("consumers"), x.get("prefetch"),
                           fmt(x.get("broker_cpu_us"), 1),
                           fmt(x.get("leader_changes")),
                           fmt_nodes(x.get("snapshot_index_after") or []),
                           fmt(x.get("rss_peak_mib")),
                           "; " + x["note"] if x.get("note") else ""))
    return "\n".join(out)


def targets_table(doc):
    ts = doc.get("targets") or targets(doc)
    met = sum(t["status"] == "met" for t in ts)
    missed = sum(t["status"] == "missed" for t in ts)
    rows = ["Targets of issue 14 part 5: %d met, %d missed, %d not measured."
            % (met, missed, len(ts) - met - missed), "",
            "| target | this run | target value | status |",
            "|---|---|---|---|"]
    for t in ts:
        rows.append("| %s | %s | %s | %s |" % (
            t["target"], t["value"], t["reference"],
            "**missed**" if t["status"] == "missed" else t["status"]))
    return "\n".join(rows)


def text(doc):
    parts = ["\n".join("- " + n for n in doc.get("notes", [])),
             steps_table(doc), restart_lines(doc), targets_table(doc)]
    return "\n\n".join(p for p in parts if p)


# ------------------------------------------------------------------ chart

def chart_available():
    try:
        import matplotlib  # noqa: F401
        return True
    except ImportError:
        return False


def chart(doc, path, title, before=None):
    """Publish msgs/s, probe p99 and RSS (max node) against depth; with
    `before` (an earlier run's document) both runs, for a before/after."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    runs = [(doc, (doc.get("meta") or {}).get("label") or "this run", "-")]
    if before:
        runs.insert(0, (before, (before.get("meta") or {}).get("label") or
                        "before", "--"))
    panels = [("msgs_per_s", "publish msgs/s", lambda s: s.get("msgs_per_s")),
              ("probe_p99_ms", "probe p99 ms",
               lambda s: s.get("probe_p99_ms")),
              ("rss", "RSS MiB (max node)",
               lambda s: max_of(s.get("rss_mib") or []))]
    fig, axes = plt.subplots(3, 1, figsize=(9, 9), sharex=True)
    axes[2].axhline(RSS_MAX_MIB, color="#d62728", linewidth=0.8,
                    linestyle=":", label="target: 2 GiB per node")
    for ax, (_, ylabel, get) in zip(axes, panels):
        for d, label, style in runs:
            pts = [(s["depth"] / 1e6, get(s)) for s in d.get("steps", [])
                   if s.get("depth") is not None and get(s) is not None]
            if not pts:
                continue
            ax.plot([p[0] for p in pts], [p[1] for p in pts], style,
                    marker="o", label=label)
        ax.set_ylabel(ylabel)
        ax.set_ylim(bottom=0)
        ax.grid(alpha=0.3)
    axes[2].set_xlabel("queue depth, million 1 KiB messages")
    axes[0].legend(fontsize=8)
    axes[2].legend(fontsize=8)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout(rect=(0, 0, 1, 0.97))
    fig.savefig(path, dpi=110)
    plt.close(fig)
