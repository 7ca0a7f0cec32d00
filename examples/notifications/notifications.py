#!/usr/bin/python3
"""notifications: one topic fanned out to three subscriptions.

The topic "notifications" has three subscriptions: email, push and audit.
Each subscription is a queue of its own ("notifications:email", ...), so
every event published to the topic reaches all three consumers, and each
consumer acks at its own pace. See README.md next to this file.

    PYTHONPATH=client/python /usr/bin/python3 \
        examples/notifications/notifications.py --events 30
"""
import argparse
import collections
import json
import os
import sys
import threading

import raftmq

TOPIC = "notifications"
SUBSCRIPTIONS = ("email", "push", "audit")
KINDS = ("signup", "order-shipped", "password-reset")


def setup(client):
    """Creates the topic and its subscriptions (all idempotent). A
    subscription only receives what is published after it exists, so this
    runs before the first publish. The queues are purged so that every run
    counts from zero."""
    client.create_topic(TOPIC)
    for sub in SUBSCRIPTIONS:
        queue = client.subscribe(TOPIC, sub)
        client.purge_queue(queue)


def publish(client, n):
    for i in range(1, n + 1):
        event = {"id": i, "kind": KINDS[i % len(KINDS)], "user": "user%d" % i}
        client.publish(topic=TOPIC, body=json.dumps(event))
    print("published %d events to topic %r" % (n, TOPIC))


def consume(cluster, sub, expected, idle, counts):
    """One consumer per subscription, each with its own connection (a
    Client serves one thread at a time). Stops after `expected` events or
    `idle` seconds without one."""
    seen = collections.Counter()
    with raftmq.Client(cluster, name="notifications-" + sub) as client:
        consumer = client.consume("%s:%s" % (TOPIC, sub), prefetch=10)
        while sum(seen.values()) < expected:
            d = client.next_delivery(timeout=idle)
            if d is None:
                break
            event = json.loads(d.body)
            # Here the email consumer would send a mail, the push consumer
            # a push notification, and audit would write an audit record.
            seen[event["kind"]] += 1
            client.ack(consumer, [d.tag])
    counts[sub] = seen


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--cluster", default=os.environ.get(
        "RAFTMQ_CLUSTER", "127.0.0.1:7001,127.0.0.1:7002,127.0.0.1:7003"),
        help="cluster addresses (default $RAFTMQ_CLUSTER, else the "
             "local cluster)")
    ap.add_argument("--events", type=int, default=30,
                    help="events to publish (default 30)")
    ap.add_argument("--idle", type=float, default=10.0,
                    help="a consumer gives up after this many seconds "
                         "without an event (default 10)")
    args = ap.parse_args()

    with raftmq.Client(args.cluster, name="notifications") as client:
        setup(client)
        counts = {}
        consumers = [threading.Thread(target=consume, args=(
            args.cluster, sub, args.events, args.idle, counts))
            for sub in SUBSCRIPTIONS]
        for t in consumers:
            t.start()
        publish(client, args.events)
    for t in consumers:
        t.join()

    ok = True
    for sub in SUBSCRIPTIONS:
        seen = counts.get(sub, collections.Counter())
        total = sum(seen.values())
        ok = ok and total == args.events
        print("%-6s %d events (%s)" % (sub + ":", total, ", ".join(
            "%s %d" % (k, seen[k]) for k in KINDS)))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
