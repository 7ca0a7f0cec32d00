"""What bench/compare.py compares, and how it reports it.

The workloads (W1..W5 of ../shared/peers/RESULTS.md and the raw-libraft
reference shapes), the targets of issue 7, and the outputs built from a list
of result records (one JSON object per run, the peers' schema): the markdown
tables, the ratios against the best peer and the raw libraft ceiling, the
targets marked met/missed, the --json document and the --chart bar chart.
No I/O besides the chart file; compare.py runs things, this module reports.
"""
import statistics

RAFTMQ = "raftmq"
REF = "raft-ref"

# (name, `raftmq bench` args), in the order of the peers' tables.
WORKLOADS = [
    ("W1-1p", ["W1", "--producers", "1"]),
    ("W1-4p", ["W1", "--producers", "4"]),
    ("W2-1p", ["W2", "--producers", "1"]),
    ("W2-4p", ["W2", "--producers", "4"]),
    ("W3", ["W3"]),
    ("W4", ["W4"]),
]

# The raw libraft ceiling (bench/raft_ref.c): the broker's shape with the
# group commit it could reach at best. 128 B: 64 payloads per entry (8 KiB
# entries), 16 entries in flight (raftmq's max_inflight_batches). 4 KiB: 8
# per entry (32 KiB entries), 16 in flight = 512 KiB in flight, inside the
# 64-entry / 512 KiB window that ../LIBRAFT.md found free of stalls.
# Smaller 128 B entries (<= 2 KiB) with 16 in flight hit a 40 ms Nagle /
# delayed-ACK stall in raft_uv_tcp (see raft_ref.c, --nodelay).
REF_SHAPES = [
    ("ref-128B", ["--size", "128", "--batch", "64", "--inflight", "16"]),
    ("ref-4KiB", ["--size", "4096", "--batch", "8", "--inflight", "16"]),
]
CEILING_OF = {"W1-1p": "ref-128B", "W1-4p": "ref-128B",
              "W2-1p": "ref-4KiB", "W2-4p": "ref-4KiB", "W3": "ref-128B"}

# Absolute targets of issue 7.
RSS_IDLE_MIB = 16
RSS_AFTER_MIB = 64
START_S = 0.5


# ------------------------------------------------------------------ values

def med(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def cpu_us(r):
    if r.get("broker_cpu_s") is None or not r.get("msgs"):
        return None
    return r["broker_cpu_s"] / r["msgs"] * 1e6


def client_pct(r):
    if r.get("client_cpu_s") is None or not r.get("secs"):
        return None
    return r["client_cpu_s"] / r["secs"] * 100


def recovery_ms(r):
    v = (r.get("extra") or {}).get("recovery_ms")
    return v if v is not None and v >= 0 else None


def lost(r):
    e = r.get("extra") or {}
    v = e.get("lost_confirmed", r.get("lost"))
    return v


def dups(r):
    e = r.get("extra") or {}
    return e.get("duplicates", r.get("duplicates"))


METRICS = {  # key: (getter, higher is better, label, decimals)
    "msgs_per_s": (lambda r: r.get("msgs_per_s"), True, "msgs/s", 0),
    "mb_per_s": (lambda r: r.get("mb_per_s"), True, "MB/s", 1),
    "p50_ms": (lambda r: r.get("p50_ms"), False, "p50 ms", 2),
    "p99_ms": (lambda r: r.get("p99_ms"), False, "p99 ms", 2),
    "p999_ms": (lambda r: r.get("p999_ms"), False, "p99.9 ms", 2),
    "broker_cpu_us": (cpu_us, False, "broker CPU µs/msg", 1),
    "client_cpu_pct": (client_pct, False, "client CPU %", 0),
    "recovery_ms": (recovery_ms, False, "W5 recovery ms", 0),
}


def has_latency(workload):
    return not workload.startswith(("W3", "W5"))


def group(results):
    """{(label, workload): [records]} in first-seen order."""
    g = {}
    for r in results:
        g.setdefault((r["label"], r["workload"]), []).append(r)
    return g


def values(rs, key):
    get = METRICS[key][0]
    out = []
    for r in rs:
        v = get(r)
        # The peers' loadgen writes 0 for a latency that does not apply.
        if v is None or (key.endswith("_ms") and key != "recovery_ms"
                         and v <= 0):
            continue
        out.append(v)
    return out


def median_of(g, label, workload, key):
    return med(values(g.get((label, workload), []), key))


def peer_labels(g):
    return sorted({l for l, _ in g if l not in (RAFTMQ, REF)})


def best_peer(g, workload, key):
    """(median, label) of the best peer for this metric, or None."""
    higher = METRICS[key][1]
    cands = []
    for l in peer_labels(g):
        v = median_of(g, l, workload, key)
        if v is not None:
            cands.append((v, l))
    if not cands:
        return None
    return max(cands) if higher else min(cands)


# ------------------------------------------------------------------ tables

def mmr(xs, dec):
    xs = [x for x in xs if x is not None]
    if not xs:
        return "-"
    f = "%%.%df" % dec
    if len(xs) == 1:
        return f % xs[0]
    return "%s [%s–%s]" % (f % med(xs), f % min(xs), f % max(xs))


def table(results):
    """The peers' table (RESULTS.md), then one row per W5 run."""
    g = group(results)
    out = ["| system | workload | runs | msgs/s median [min–max] | MB/s | "
           "p50 ms | p99 ms | p99.9 ms | broker CPU µs/msg | "
           "client CPU % of wall |",
           "|---|---|---|---|---|---|---|---|---|---|"]
    for (label, w), rs in g.items():
        if w.startswith("W5"):
            continue
        lat = has_latency(w)

        def col(key, dec, rs=rs):
            return mmr(values(rs, key), dec)
        out.append("| %s | %s | %d | %s | %s | %s | %s | %s | %s | %s |" % (
            label, w, len(rs), col("msgs_per_s", 0), col("mb_per_s", 1),
            col("p50_ms", 2) if lat else "-",
            col("p99_ms", 2) if lat else "-",
            col("p999_ms", 2) if (w.startswith("W4") or label == REF)
            else "-",
            mmr([cpu_us(r) for r in rs], 1 if label == REF else 0),
            mmr([client_pct(r) for r in rs], 0)))
    if not any(w.startswith("W5") for _, w in g):
        return "\n".join(out)
    out += ["", "| system | W5 run | leader killed | recovery ms (kill → "
            "confirms resume) | kill → first confirm of a msg sent after "
            "kill, ms | kill → first confirm of any msg, ms | max confirm "
            "gap ms | published | confirmed | failed/timed out | consumed "
            "after | lost confirmed | duplicates |",
            "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for (label, w), rs in g.items():
        if not w.startswith("W5"):
            continue
        for r in rs:
            e = r.get("extra", {})
            out.append("| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | "
                       "%s | **%s** | %s |" % (
                           label, r.get("run"), e.get("leader_killed"),
                           e.get("recovery_ms"),
                           e.get("kill_to_first_confirm_of_new_msg_ms"),
                           e.get("kill_to_first_confirm_ms"),
                           e.get("max_confirm_gap_ms"), e.get("published"),
                           e.get("confirmed"), e.get("failed_or_timed_out"),
                           e.get("consumed"), e.get("lost_confirmed"),
                           e.get("duplicates")))
    return "\n".join(out)


def ratio_rows(results):
    """raftmq's medians against the best peer and the raw libraft ceiling."""
    g = group(results)
    rows = []
    for w in dict.fromkeys(w for l, w in g if l == RAFTMQ):
        for key in ("msgs_per_s", "mb_per_s", "p99_ms", "broker_cpu_us",
                    "recovery_ms"):
            if (key == "recovery_ms") != w.startswith("W5"):
                continue
            if key == "p99_ms" and not has_latency(w):
                continue
            if key == "mb_per_s" and not w.startswith("W2"):
                continue
            if key == "msgs_per_s" and w.startswith("W4"):
                continue
            mine = median_of(g, RAFTMQ, w, key)
            if mine is None:
                continue
            row = {"workload": w, "metric": key, "label": METRICS[key][2],
                   "raftmq": mine, "best_peer": None, "best_peer_label": None,
                   "vs_best_peer": None, "ceiling": None,
                   "ceiling_workload": None, "vs_ceiling": None}
            best = best_peer(g, w, key)
            if best:
                row["best_peer"], row["best_peer_label"] = best
                row["vs_best_peer"] = mine / best[0] if best[0] else None
            ref = CEILING_OF.get(w)
            if ref and key in ("msgs_per_s", "mb_per_s"):
                c = median_of(g, REF, ref, key)
                if c:
                    row["ceiling"], row["ceiling_workload"] = c, ref
                    row["vs_ceiling"] = mine / c
            if row["best_peer"] is None and row["ceiling"] is None:
                continue
            rows.append(row)
    return rows


def ratios(results):
    rows = ratio_rows(results)
    if not rows:
        return ""
    out = ["Medians. msgs/s and MB/s: higher is better; ms and µs: lower is "
           "better. Raw libraft: bench/raft_ref.c, same run.", "",
           "| workload | metric | raftmq | best peer | raftmq / best peer | "
           "raw libraft | raftmq / raw libraft |",
           "|---|---|---|---|---|---|---|"]
    for r in rows:
        f = "%%.%df" % METRICS[r["metric"]][3]
        out.append("| %s | %s | %s | %s | %s | %s | %s |" % (
            r["workload"], r["label"], f % r["raftmq"],
            (f + " (%s)") % (r["best_peer"], r["best_peer_label"])
            if r["best_peer"] is not None else "-",
            "%.2fx" % r["vs_best_peer"] if r["vs_best_peer"] is not None
            else "-",
            (f + " (%s)") % (r["ceiling"], r["ceiling_workload"])
            if r["ceiling"] is not None else "-",
            "%.0f %%" % (100 * r["vs_ceiling"])
            if r["vs_ceiling"] is not None else "-"))
    return "\n".join(out)


def footprint(meta):
    """Start-up and RSS per node: raftmq and the peers (from their notes)."""
    def mib(xs):
        xs = [x for x in xs or [] if x is not None]
        return " / ".join("%.0f" % x for x in xs) if xs else "-"
    rows = [(RAFTMQ, meta)] + sorted((meta.get("peer_mem") or {}).items())
    out = ["| system | 3-node cluster start to ready s | RSS MiB per node "
           "idle | RSS MiB per node after W1–W4 |", "|---|---|---|---|"]
    for label, d in rows:
        st = d.get("start_s")
        out.append("| %s | %s | %s | %s |" % (
            label, "-" if st is None else "%.2f" % st,
            mib(d.get("rss_idle_mib")), mib(d.get("rss_after_mib"))))
    return "\n".join(out)


# ----------------------------------------------------------------- targets

def target_rows(results, meta):
    """Issue 7's targets, each met / missed / n/a (not measured)."""
    g = group(results)
    rows = []

    def add(name, mine, ref_txt, ok, fmt="%.2f", goal=None):
        if mine is None or ok is None:
            status = "n/a"
        else:
            status = "met" if ok else "missed"
        rows.append({"target": name,
                     "raftmq": None if mine is None else fmt % mine,
                     "reference": ref_txt, "status": status,
                     "value": mine, "goal": goal})

    def vs_peer(w, key, factor, name):
        mine = median_of(g, RAFTMQ, w, key)
        best = best_peer(g, w, key)
        higher = METRICS[key][1]
        f = "%%.%df" % METRICS[key][3]
        if best is None:
            add(name, mine, "no peer results", None, f)
            return
        goal = factor * best[0]
        ok = None if mine is None else (
            mine >= goal if higher else mine <= goal)
        add(name, mine, ("%s" + f + " (%s)") % (
            "" if factor == 1 else "%g × " % factor, best[0], best[1]), ok, f,
            goal)

    for w in ("W1-1p", "W1-4p"):
        vs_peer(w, "msgs_per_s", 2, "%s msgs/s ≥ 2× best peer" % w)
        vs_peer(w, "p99_ms", 1, "%s p99 ≤ best peer's" % w)
    for w in ("W2-1p", "W2-4p"):
        vs_peer(w, "mb_per_s", 1, "%s MB/s ≥ best peer" % w)
        mine = median_of(g, RAFTMQ, w, "mb_per_s")
        c = median_of(g, REF, CEILING_OF[w], "mb_per_s")
        add("%s MB/s ≥ 80 %% of raw libraft" % w, mine,
            "0.8 × %.1f (%s)" % (c, CEILING_OF[w]) if c else "not measured",
            None if mine is None or not c else mine >= 0.8 * c, "%.1f",
            0.8 * c if c else None)
    vs_peer("W3", "msgs_per_s", 2, "W3 msgs/s ≥ 2× best peer")
    vs_peer("W4", "p99_ms", 0.5, "W4 p99 ≤ ½ best peer's")
    vs_peer("W4", "broker_cpu_us", 0.5, "W4 broker CPU/msg ≤ ½ best peer's")
    vs_peer("W5", "recovery_ms", 1, "W5 recovery ≤ best peer's (median)")
    w5 = g.get((RAFTMQ, "W5"), [])
    for name, get in (("W5 lost confirmed = 0 (all runs)", lost),
                      ("W5 duplicates = 0 (all runs)", dups)):
        vs = [get(r) for r in w5]
        known = [v for v in vs if v is not None]
        add(name, sum(known) if known else None, "0",
            None if not known or len(known) != len(vs) else sum(known) == 0,
            "%d", 0)
    idle = [v for v in meta.get("rss_idle_mib") or [] if v is not None]
    after = [v for v in meta.get("rss_after_mib") or [] if v is not None]
    add("RSS per node idle ≤ %d MiB (max node)" % RSS_IDLE_MIB,
        max(idle) if idle else None, "%d MiB" % RSS_IDLE_MIB,
        max(idle) <= RSS_IDLE_MIB if idle else None, "%.1f", RSS_IDLE_MIB)
    add("RSS per node after W1–W4 ≤ %d MiB (max node)" % RSS_AFTER_MIB,
        max(after) if after else None, "%d MiB" % RSS_AFTER_MIB,
        max(after) <= RSS_AFTER_MIB if after else None, "%.1f",
        RSS_AFTER_MIB)
    st = meta.get("start_s")
    add("3-node cluster start to ready ≤ %.1f s" % START_S, st,
        "%.1f s" % START_S, None if st is None else st <= START_S, "%.2f",
        START_S)
    return rows


def targets(results, meta):
    rows = target_rows(results, meta)
    n_met = sum(r["status"] == "met" for r in rows)
    n_missed = sum(r["status"] == "missed" for r in rows)
    out = ["Targets of issue 7 (medians; \"best peer\" is the best value of "
           "that metric among the peers): %d met, %d missed, %d not "
           "measured.%s" % (n_met, n_missed, len(rows) - n_met - n_missed,
                            " QUICK RUN: small counts, not comparable."
                            if meta.get("quick") else ""), "",
           "| target | raftmq | reference | status |", "|---|---|---|---|"]
    for r in rows:
        out.append("| %s | %s | %s | %s |" % (
            r["target"], r["raftmq"] if r["raftmq"] is not None else "-",
            r["reference"],
            {"met": "met", "missed": "**missed**"}.get(r["status"], "n/a")))
    return "\n".join(out)


# -------------------------------------------------------------------- JSON

def summary_rows(results):
    out = []
    for (label, w), rs in group(results).items():
        row = {"label": label, "workload": w, "runs": len(rs)}
        for key in METRICS:
            vs = values(rs, key)
            row[key] = {"median": med(vs), "min": min(vs) if vs else None,
                        "max": max(vs) if vs else None}
        out.append(row)
    return out


def document(results, meta, notes, ok, results_file):
    return {"ok": ok, "notes": notes, "meta": meta,
            "summary": summary_rows(results),
            "ratios": ratio_rows(results),
            "targets": target_rows(results, meta),
            "results": results, "results_file": results_file}


# ------------------------------------------------------------------- chart

def chart_available():
    try:
        import matplotlib  # noqa: F401
        return True
    except ImportError:
        return False


def chart(results, path, title):
    """Bar chart: msgs/s (W1..W3) and p99 (W1, W2, W4) per workload for
    raftmq, each peer and the raw libraft ceiling; medians, min-max whiskers.
    """
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    g = group(results)
    systems = [RAFTMQ] + peer_labels(g) + [REF]
    names = {REF: "raw libraft ceiling"}
    colors = {RAFTMQ: "#1f77b4", REF: "#7f7f7f"}
    palette = ["#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b"]
    for i, s in enumerate(peer_labels(g)):
        colors[s] = palette[i % len(palette)]
    panels = [("msgs_per_s", "msgs/s (median, log)",
               ["W1-1p", "W1-4p", "W2-1p", "W2-4p", "W3"]),
              ("p99_ms", "p99 latency, ms (median, log)",
               ["W1-1p", "W1-4p", "W2-1p", "W2-4p", "W4"])]
    fig, axes = plt.subplots(2, 1, figsize=(11, 8.5))
    for ax, (key, ylabel, wls) in zip(axes, panels):
        width = 0.8 / len(systems)
        for i, s in enumerate(systems):
            xs, ys, lo, hi = [], [], [], []
            for j, w in enumerate(wls):
                src = CEILING_OF.get(w) if s == REF else w
                if src is None:
                    continue
                vs = values(g.get((s, src), []), key)
                if not vs:
                    continue
                m = med(vs)
                xs.append(j - 0.4 + width * (i + 0.5))
                ys.append(m)
                lo.append(m - min(vs))
                hi.append(max(vs) - m)
            if not xs:
                continue
            bars = ax.bar(xs, ys, width, yerr=[lo, hi], capsize=2,
                          label=names.get(s, s), color=colors[s])
            ax.bar_label(bars, labels=[
                "%.0f" % y if y >= 100 else "%.1f" % y for y in ys],
                fontsize=7, padding=2)
        ax.set_xticks(range(len(wls)))
        ax.set_xticklabels(wls)
        ax.set_yscale("log")
        ax.set_ylabel(ylabel)
        ax.grid(axis="y", which="major", alpha=0.3)
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="upper center", ncol=len(labels),
               fontsize=9, bbox_to_anchor=(0.5, 0.955))
    fig.suptitle(title, fontsize=10)
    fig.text(0.5, 0.005, "raw libraft ceiling (bench/raft_ref.c): W1 and W3 "
             "against ref-128B, W2 against ref-4KiB; its p99 is the commit "
             "latency. Whiskers: min–max of the runs.", ha="center",
             fontsize=8)
    fig.tight_layout(rect=(0, 0.02, 1, 0.93))
    fig.savefig(path, dpi=110)
    plt.close(fig)
