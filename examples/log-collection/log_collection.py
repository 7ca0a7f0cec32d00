#!/usr/bin/python3
"""log-collection: many producers, batched publish; one collector, batched
consume into a file.

Each producer thread stands for an application: it publishes its log lines
to the queue "logs" in batches (one PublishBatch request, one log entry on
the broker, per batch). The collector fetches up to --fetch lines at a time,
appends them to the output file, makes the write durable (fsync) and only
then acks the batch: a line is removed from the queue only once it is safely
on disk. At the end the file is checked: every line must be there exactly
once. See README.md next to this file.

    PYTHONPATH=client/python /usr/bin/python3 \
        examples/log-collection/log_collection.py --output /tmp/collected.log
"""
import argparse
import collections
import os
import sys
import threading

import raftmq

QUEUE = "logs"


def line(app, i):
    return "app%d %06d GET /items/%d 200" % (app, i, (app * 7919 + i) % 1000)


def produce(cluster, app, lines, batch, errors):
    """One application: `lines` log lines in batches of `batch`."""
    with raftmq.Client(cluster, name="app%d" % app) as client:
        for start in range(0, lines, batch):
            bodies = [line(app, i).encode()
                      for i in range(start, min(start + batch, lines))]
            # Each item of a batch succeeds or fails on its own.
            for code, _, _ in client.publish_batch(QUEUE, bodies):
                if code != raftmq.pb.ERROR_CODE_OK:
                    errors.append(raftmq.pb.ErrorCode.Name(code))


def collect(client, path, expected, fetch, idle_ms):
    """Moves lines from the queue to the file until `expected` lines were
    written or none came for `idle_ms`. Returns how many were written."""
    written = 0
    with open(path, "ab") as out:
        while written < expected:
            consumer, batch = client.fetch(QUEUE, max_messages=fetch,
                                           wait_ms=idle_ms)
            if not batch:
                break
            out.write(b"".join(d.body + b"\n" for d in batch))
            out.flush()
            os.fsync(out.fileno())
            # Acked only after the write is durable: if the collector dies
            # before this, the lines are delivered again (at least once).
            client.ack(consumer, [d.tag for d in batch])
            written += len(batch)
    return written


def check(path, producers, lines):
    """Every expected line exactly once: returns (missing, duplicated)."""
    with open(path) as f:
        got = collections.Counter(f.read().splitlines())
    want = {line(app, i) for app in range(1, producers + 1)
            for i in range(lines)}
    missing = len(want - set(got))
    duplicated = sum(n - 1 for n in got.values() if n > 1)
    unexpected = sum(n for text, n in got.items() if text not in want)
    return missing, duplicated + unexpected


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--cluster", default=os.environ.get(
        "RAFTMQ_CLUSTER", "127.0.0.1:7001,127.0.0.1:7002,127.0.0.1:7003"),
        help="cluster addresses (default $RAFTMQ_CLUSTER, else the "
             "local cluster)")
    ap.add_argument("--producers", type=int, default=8,
                    help="producer threads (default 8)")
    ap.add_argument("--lines", type=int, default=1000,
                    help="lines per producer (default 1000)")
    ap.add_argument("--batch", type=int, default=100,
                    help="lines per PublishBatch (default 100)")
    ap.add_argument("--fetch", type=int, default=500,
                    help="lines per fetch (default 500)")
    ap.add_argument("--output", default="collected.log",
                    help="file the collector appends to (default "
                         "collected.log; emptied at the start)")
    args = ap.parse_args()
    expected = args.producers * args.lines

    with raftmq.Client(args.cluster, name="collector") as client:
        client.create_queue(QUEUE)
        client.purge_queue(QUEUE)  # every run starts from zero
        open(args.output, "wb").close()

        errors = []
        producers = [threading.Thread(target=produce, args=(
            args.cluster, app, args.lines, args.batch, errors))
            for app in range(1, args.producers + 1)]
        for t in producers:
            t.start()
        written = collect(client, args.output, expected, args.fetch, 10000)
        for t in producers:
            t.join()

    missing, extra = check(args.output, args.producers, args.lines)
    print("published %d lines from %d producers in batches of %d"
          % (expected, args.producers, args.batch))
    print("collected %d lines into %s" % (written, args.output))
    if errors:
        print("publish errors: %d (%s)" % (len(errors), errors[0]))
    if missing or extra or errors:
        print("check: FAILED: %d missing, %d duplicated or unexpected"
              % (missing, extra))
        return 1
    print("check: every line arrived exactly once")
    return 0


if __name__ == "__main__":
    sys.exit(main())
