"""Publish and consume through a 3-node cluster on loopback.

Scenario: a client connected to a follower publishes N messages (it is
redirected to the leader), another client consumes them all through a
different follower, acks each; afterwards the three replicas report the
same applied index and a byte-identical state (digest of the queue state
dump)."""
import os

import raftmq


def follower(cluster):
    lead = cluster.wait_leader()
    return next(n for n in cluster.nodes if n.id != lead.id), lead


def test_publish_consume_via_redirect(cluster):
    f, lead = follower(cluster)
    pub = raftmq.Client(f.client_address)
    pub.create_queue("orders")
    n = 500
    seqs = [pub.publish("orders", b"order-%d" % i, msg_id="o-%d" % i)[0]
            for i in range(n)]
    assert seqs == sorted(seqs) and len(set(seqs)) == n
    # a publish with a known id is confirmed again, not stored twice
    seq, dup = pub.publish("orders", b"order-0", msg_id="o-0")
    assert dup and seq == seqs[0]

    other = next(x for x in cluster.nodes if x.id not in (f.id, lead.id))
    con = raftmq.Client(other.client_address)
    cid = con.consume("orders", prefetch=50)
    got = []
    while len(got) < n:
        d = con.next_delivery(timeout=5)
        assert d is not None, "stalled after %d deliveries" % len(got)
        assert d.delivery_count == 1 and not d.redelivered
        got.append(d.body)
        done, unknown = con.ack(cid, [d.tag])
        assert (done, unknown) == (1, 0)
    assert got == [b"order-%d" % i for i in range(n)]  # FIFO
    assert con.next_delivery(timeout=0.3) is None
    info = con.queue_info("orders")
    assert (info.ready, info.unacked, info.published, info.acked,
            info.deduplicated) == (0, 0, n, n, 1)
    cluster.wait_converged()


def test_errors_are_clear(cluster):
    c = raftmq.Client(cluster.addresses())
    try:
        c.publish("missing", b"x")
        raise AssertionError("publish to a missing queue succeeded")
    except raftmq.Error as e:
        assert e.code == raftmq.pb.ERROR_CODE_NOT_FOUND
        assert '"missing"' in e.message
    c.create_queue("small", max_length=2)
    c.publish("small", b"1")
    c.publish("small", b"2")
    try:
        c.publish("small", b"3")
        raise AssertionError("publish over max_length succeeded")
    except raftmq.Error as e:
        assert e.code == raftmq.pb.ERROR_CODE_QUEUE_FULL
    # creating again with the same settings is fine, other settings not
    c.create_queue("small", max_length=2)
    try:
        c.create_queue("small", max_length=3)
        raise AssertionError("conflicting create succeeded")
    except raftmq.Error as e:
        assert e.code == raftmq.pb.ERROR_CODE_ALREADY_EXISTS
    # an ack from a consumer this connection does not own
    try:
        c.ack(12345, [1])
        raise AssertionError("ack for a foreign consumer succeeded")
    except raftmq.Error as e:
        assert e.code == raftmq.pb.ERROR_CODE_UNKNOWN_CONSUMER


def test_topic_fan_out(cluster):
    c = raftmq.Client(cluster.addresses())
    c.create_topic("events")
    assert c.subscribe("events", "audit") == "events:audit"
    c.subscribe("events", "email")
    for i in range(20):
        c.publish(topic="events", body=b"e%d" % i)
    for sub in ("events:audit", "events:email"):
        info = c.queue_info(sub)
        assert info.ready == 20 and info.topic == "events"
    cid = c.consume("events:email", prefetch=100)
    bodies = []
    while len(bodies) < 20:
        d = c.next_delivery(timeout=5)
        assert d is not None
        bodies.append(d.body)
        c.ack(cid, [d.tag])
    assert bodies == [b"e%d" % i for i in range(20)]
    assert c.queue_info("events:audit").ready == 20


def test_metrics_and_health(cluster):
    lead = cluster.wait_leader()
    c = raftmq.Client(lead.client_address)
    c.create_queue("m")
    c.publish("m", b"x")
    code, text = lead.http("/metrics")
    assert code == 200
    for name in ("raftmq_queue_messages_ready{queue=\"m\"} 1",
                 "raftmq_queue_messages_published_total{queue=\"m\"} 1",
                 "raftmq_raft_is_leader 1", "raftmq_raft_term",
                 "raftmq_raft_commit_index", "raftmq_raft_applied_index",
                 "raftmq_publish_confirm_seconds_count 1",
                 "raftmq_log_entries", "raftmq_snapshot_bytes",
                 "raftmq_memory_bytes", "raftmq_connections"):
        assert name in text, name
    heap = [int(line.split()[1]) for line in text.splitlines()
            if line.startswith("raftmq_heap_bytes ")]
    # Under AddressSanitizer malloc is ASan's: mallinfo2() reports 0.
    assert len(heap) == 1 and (
        heap[0] > 0 or os.environ.get("RAFTMQ_SANITIZE") == "1"), heap
    for n in cluster.nodes:
        assert n.http("/healthz/live") == (200, "ok\n")
        assert n.http("/healthz/ready")[0] == 200
    s = lead.status()
    assert s["leader_id"] == lead.id and len(s["nodes"]) == 3
    assert [q["name"] for q in s["queues"]] == ["m"]
