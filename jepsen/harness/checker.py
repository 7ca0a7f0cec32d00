"""The checker: Jepsen's total-queue semantics plus raftmq's own checks.

It works on elements (queue, value): an enqueue to a queue expects its value
in that queue; a publish to a topic expects it in every subscription queue
listed in the op's "queues" (fan-out). Following jepsen.checker/total-queue:

    attempts   every invoked enqueue
    acked      enqueues that completed ok (confirmed)
    dequeued   values of ok dequeues and drains, with multiplicity
    lost       acked but never dequeued                      -> invalid
    unexpected dequeued but never attempted                  -> invalid
    duplicated dequeued more than once (at-least-once allows it)
    recovered  dequeued although the enqueue was indeterminate (info)

and raftmq's additions:

    failed-dequeued  dequeued although the enqueue failed: the broker said
                     "not done" and did it anyway                -> invalid
    lost per node    lost elements by the node that confirmed the enqueue
    order            first deliveries (delivery_count 1) seen by one consumer
                     must come in increasing tag (= per-queue seq) order:
                     first deliveries are FIFO per queue (docs/queue.md);
                     each tag lower than one the same consumer already got
                     first is one violation (counted; the test stays valid,
                     the summary flags it)

The result is plain data (JSON-able). `check(ops)` never raises on odd
histories: unmatched invocations count as info.
"""
import collections

ENQ, DEQ, DRAIN = "enqueue", "dequeue", "drain"


def _deliveries(op):
    """(queue, value, tag, delivery_count) of every value an ok dequeue or
    drain op carries."""
    q = op.get("queue")
    if op["f"] == DEQ:
        if op.get("value") is None:
            return []
        return [(q, op["value"], op.get("tag"), op.get("delivery_count"))]
    vals = op.get("value") or []
    tags = op.get("tags") or [None] * len(vals)
    counts = op.get("delivery_counts") or [None] * len(vals)
    return list(zip([q] * len(vals), vals, tags, counts))


def _sample(xs, n=50):
    return sorted(xs, key=lambda e: (str(e[0]), e[1]))[:n]


def _completions(ops):
    """Pairs each invocation with its completion; returns
    [(invoke, completion-or-None)] for client ops."""
    pending = {}
    pairs = []
    for op in ops:
        if op.get("process") == "nemesis":
            continue
        p = op.get("process")
        if op["type"] == "invoke":
            pending[p] = len(pairs)
            pairs.append([op, None])
        elif p in pending:
            pairs[pending.pop(p)][1] = op
    return pairs


def longest_gap(times_ns, start_ns, end_ns):
    """Longest interval in [start, end] without an event, in seconds, and
    where it started."""
    pts = [start_ns] + sorted(t for t in times_ns if start_ns <= t <= end_ns) \
        + [end_ns]
    best, at = 0, start_ns
    for a, b in zip(pts, pts[1:]):
        if b - a > best:
            best, at = b - a, a
    return best / 1e9, at / 1e9


def backlog(ops, step_s=5.0):
    """[(t s, elements acknowledged and not dequeued yet)] every step_s
    until the drain starts: how long the queues are. A growing backlog
    makes the nodes' memory grow with it (the soak reads it so)."""
    end = min((o["time"] for o in ops if o.get("f") == DRAIN),
              default=max((o["time"] for o in ops), default=0))
    events = []
    seen = set()
    for op in ops:
        if op.get("process") == "nemesis" or op["type"] != "ok":
            continue
        if op["f"] == ENQ:
            events.append((op["time"], len(op.get("queues") or [1])))
        elif op["f"] == DEQ and op.get("value") is not None:
            key = (op.get("queue"), op["value"])
            if key not in seen:
                seen.add(key)
                events.append((op["time"], -1))
    events.sort()
    out, level, i = [], 0, 0
    step = int(step_s * 1e9)
    t = step
    while t <= end:
        while i < len(events) and events[i][0] <= t:
            level += events[i][1]
            i += 1
        out.append((t / 1e9, level))
        t += step
    return out


def check(ops):
    pairs = _completions(ops)
    attempts, acked, failed, indeterminate = set(), {}, set(), set()
    enq_counts = collections.Counter()
    for inv, comp in pairs:
        if inv["f"] != ENQ:
            continue
        keys = [(q, inv["value"]) for q in inv.get("queues") or
                [inv.get("queue")]]
        attempts.update(keys)
        kind = comp["type"] if comp else "info"
        enq_counts[kind] += 1
        for k in keys:
            if kind == "ok":
                acked[k] = comp.get("node")
            elif kind == "fail":
                failed.add(k)
            else:
                indeterminate.add(k)

    dequeued = collections.Counter()
    order_violations = []
    first_max = {}  # (process, consumer, queue) -> highest first-delivery tag
    deq_counts = collections.Counter()
    for op in ops:
        if op.get("process") == "nemesis" or op["type"] == "invoke" or \
                op["f"] not in (DEQ, DRAIN):
            continue
        deq_counts[(op["f"], op["type"])] += 1
        if op["type"] != "ok":
            continue
        for q, v, tag, count in _deliveries(op):
            dequeued[(q, v)] += 1
            if count == 1 and tag is not None:
                key = (op.get("process"), op.get("consumer"), q)
                prev = first_max.get(key)
                if prev is not None and tag <= prev:
                    order_violations.append({"queue": q, "value": v,
                                             "tag": tag, "after_tag": prev,
                                             "process": op.get("process"),
                                             "index": op.get("index")})
                first_max[key] = tag if prev is None else max(prev, tag)

    lost = [k for k in acked if k not in dequeued]
    unexpected = [k for k in dequeued if k not in attempts]
    duplicated = {k: n for k, n in dequeued.items() if n > 1}
    recovered = [k for k in dequeued
                 if k in indeterminate and k not in acked]
    failed_dequeued = [k for k in dequeued if k in failed and k not in acked]
    lost_by_node = collections.Counter(acked[k] or "?" for k in lost)

    # Unavailability: the longest stretch without a confirmed enqueue while
    # the producers were trying (from the first invocation to the last).
    enq_inv = [inv["time"] for inv, _ in pairs if inv["f"] == ENQ]
    enq_ok = [c["time"] for inv, c in pairs
              if inv["f"] == ENQ and c and c["type"] == "ok"]
    gap, gap_at = (longest_gap(enq_ok, min(enq_inv), max(enq_inv))
                   if enq_inv else (0.0, 0.0))

    valid = not lost and not unexpected and not failed_dequeued
    return {
        "valid": valid,
        "ops": sum(1 for _, c in pairs if c is not None),
        "enqueue": {"attempted": sum(enq_counts.values()),
                    "ok": enq_counts["ok"], "fail": enq_counts["fail"],
                    "info": enq_counts["info"]},
        "dequeue": {"%s-%s" % k: n for k, n in sorted(deq_counts.items())},
        "elements": {"attempted": len(attempts), "acked": len(acked),
                     "dequeued": len(dequeued)},
        "lost_count": len(lost), "lost": _sample(lost),
        "lost_by_node": dict(lost_by_node),
        "unexpected_count": len(unexpected), "unexpected": _sample(unexpected),
        "duplicated_count": len(duplicated),
        "duplicated_extra_deliveries": sum(n - 1 for n in duplicated.values()),
        "duplicated": _sample(list(duplicated)),
        "recovered_count": len(recovered), "recovered": _sample(recovered),
        "failed_dequeued_count": len(failed_dequeued),
        "failed_dequeued": _sample(failed_dequeued),
        "order_violation_count": len(order_violations),
        "order_violations": order_violations[:50],
        "longest_unavailability_s": round(gap, 3),
        "longest_unavailability_at_s": round(gap_at, 3),
    }
