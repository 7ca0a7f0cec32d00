"""Timers fire without client traffic (the leader's ticker).

Scenarios, each on a 3-node cluster; after the setup the client sends
nothing (it only reads deliveries pushed to it; state is checked through
the followers' /v1/status, whose state changes only through the log):
- ack timeout: a queue with ack_timeout_ms=300; a consumer (prefetch 1)
  takes a message and does not ack; the message is pushed again to it
  after the deadline with delivery_count 2 and redelivered=True, and not
  before the deadline.
- delayed message: a publish with delay_ms=500 is not delivered to an
  attached consumer within 0.4 s of its confirm, and is delivered soon
  after 0.5 s.
- TTL: a queue with ttl_ms=300 and a dead-letter queue; with no consumer,
  after about 1 s the message has left the queue (expired 1) and waits in
  the dead-letter queue; consumed from there it says dead_letter_reason
  EXPIRED and the queue it came from.
- nack with a delay: a message nacked with delay_ms=500 is not redelivered
  within 0.4 s, then is redelivered with delivery_count 2.
- max_deliveries: a queue with max_deliveries=3 and a dead-letter queue;
  the message nacked 3 times (redelivered at once after the first two) is
  dead-lettered with reason MAX_DELIVERIES and not delivered again from
  its queue.
"""
import time

import raftmq

pb = raftmq.pb


def leader_client(cluster):
    lead = cluster.wait_leader()
    return raftmq.Client(lead.client_address), lead


def follower_queue(cluster, lead, name):
    """The queue's status on every follower (replicated state only)."""
    out = []
    for n in cluster.nodes:
        if n.id == lead.id:
            continue
        st = n.status()
        out.append(next(q for q in st["queues"] if q["name"] == name))
    return out


def wait_follower_queue(cluster, lead, name, pred, timeout, what):
    deadline = time.monotonic() + timeout
    qs = None
    while time.monotonic() < deadline:
        qs = follower_queue(cluster, lead, name)
        if all(pred(q) for q in qs):
            return qs
        time.sleep(0.05)
    raise AssertionError("%s: not within %.1f s: %s" % (what, timeout, qs))


def test_ack_timeout_redelivers(cluster):
    c, lead = leader_client(cluster)
    c.create_queue("slow", ack_timeout_ms=300)
    c.publish("slow", b"job")
    c.consume("slow", prefetch=1)
    d = c.next_delivery(timeout=5)
    assert d is not None and d.body == b"job"
    assert d.delivery_count == 1 and not d.redelivered
    t0 = time.monotonic()
    # nothing sent from here on: only pushed deliveries are read
    assert c.next_delivery(timeout=0.2) is None, "redelivered too early"
    d2 = c.next_delivery(timeout=1.5)
    elapsed = time.monotonic() - t0
    assert d2 is not None, "not redelivered after the ack timeout"
    assert d2.body == b"job" and d2.delivery_count == 2 and d2.redelivered
    assert elapsed >= 0.2, elapsed
    print("redelivered %.3f s after the first delivery was read" % elapsed)
    wait_follower_queue(cluster, lead, "slow",
                        lambda q: q["redelivered"] == 1 and
                        q["unacked"] == 1, 2, "redelivery replicated")
    # the redelivery can be acked
    assert c.ack(d2.consumer_id, [d2.tag]) == (1, 0)
    assert c.queue_info("slow").acked == 1


def test_delayed_message(cluster):
    c, lead = leader_client(cluster)
    c.create_queue("later")
    c.consume("later", prefetch=10)
    t0 = time.monotonic()
    c.publish("later", b"soon", delay_ms=500)
    t_conf = time.monotonic()
    assert c.next_delivery(timeout=0.4 - (time.monotonic() - t_conf)) \
        is None, "delivered before its delay"
    d = c.next_delivery(timeout=2)
    elapsed = time.monotonic() - t0
    assert d is not None, "delayed message never delivered"
    assert d.body == b"soon" and d.delivery_count == 1
    assert 0.4 <= elapsed < 1.5, elapsed
    print("delivered %.3f s after the publish" % elapsed)


def test_ttl_dead_letters(cluster):
    c, lead = leader_client(cluster)
    c.create_queue("dlq")
    c.create_queue("short", ttl_ms=300, dead_letter="dlq")
    c.publish("short", b"perishable", msg_id="p-1")
    # nothing sent from here on until the message has expired
    time.sleep(1.0)
    qs = wait_follower_queue(
        cluster, lead, "short",
        lambda q: q["ready"] == 0 and q["expired"] == 1 and
        q["dead_lettered"] == 1, 1.0, "expired")
    dl = follower_queue(cluster, lead, "dlq")
    assert all(q["ready"] == 1 for q in dl), dl
    assert c.queue_info("dlq").ready == 1
    info = c.queue_info("short")
    assert (info.ready, info.expired, info.dead_lettered) == (0, 1, 1)
    cid = c.consume("dlq", prefetch=1)
    d = c.next_delivery(timeout=5)
    assert d is not None and d.body == b"perishable"
    assert d.dead_letter_reason == pb.DEAD_LETTER_REASON_EXPIRED, d
    assert d.dead_letter_queue == "short", d
    assert d.msg_id == b"p-1"
    assert c.ack(cid, [d.tag]) == (1, 0)


def test_nack_with_delay(cluster):
    c, lead = leader_client(cluster)
    c.create_queue("retry")
    c.publish("retry", b"flaky")
    cid = c.consume("retry", prefetch=5)
    d = c.next_delivery(timeout=5)
    assert d is not None and d.delivery_count == 1
    t0 = time.monotonic()
    assert c.nack(cid, [d.tag], delay_ms=500) == (1, 0)
    t_done = time.monotonic()
    # nothing sent from here on: only pushed deliveries are read
    assert c.next_delivery(timeout=0.4 - (t_done - t0)) is None, \
        "redelivered before the nack delay"
    wait_follower_queue(cluster, lead, "retry",
                        lambda q: q["nacked"] == 1, 2, "nack replicated")
    d2 = c.next_delivery(timeout=2)
    elapsed = time.monotonic() - t0
    assert d2 is not None, "not redelivered after the nack delay"
    assert d2.body == b"flaky" and d2.delivery_count == 2 and d2.redelivered
    assert 0.4 <= elapsed < 1.5, elapsed
    print("redelivered %.3f s after the nack" % elapsed)
    assert c.ack(cid, [d2.tag]) == (1, 0)


def test_max_deliveries_dead_letters(cluster):
    c, lead = leader_client(cluster)
    c.create_queue("poison-dlq")
    c.create_queue("poison", max_deliveries=3, dead_letter="poison-dlq")
    c.publish("poison", b"bad", msg_id="bad-1")
    c.publish("poison", b"good", msg_id="good-1")
    cid = c.consume("poison", prefetch=1)
    counts = []
    while True:
        d = c.next_delivery(timeout=1.0)
        if d is None:
            break
        if d.body == b"good":
            assert c.ack(cid, [d.tag]) == (1, 0)
            continue
        counts.append(d.delivery_count)
        assert len(counts) <= 3, "delivered past max_deliveries: %s" % counts
        assert c.nack(cid, [d.tag]) == (1, 0)
    assert counts == [1, 2, 3], counts
    info = c.queue_info("poison")
    assert (info.ready, info.unacked, info.nacked, info.dead_lettered,
            info.acked) == (0, 0, 3, 1, 1), info
    wait_follower_queue(cluster, lead, "poison-dlq",
                        lambda q: q["ready"] == 1, 2, "dead letter replicated")
    c2 = raftmq.Client(cluster.addresses())
    cid2 = c2.consume("poison-dlq", prefetch=1)
    d = c2.next_delivery(timeout=5)
    assert d is not None and d.body == b"bad" and d.msg_id == b"bad-1"
    assert d.dead_letter_reason == pb.DEAD_LETTER_REASON_MAX_DELIVERIES, d
    assert d.dead_letter_queue == "poison", d
    assert c2.ack(cid2, [d.tag]) == (1, 0)
    cluster.wait_converged()
