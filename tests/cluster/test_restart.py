"""Restarting nodes: clean restarts, crashes of every node, snapshot install.

Scenarios:
- Full clean restart: a 3-node cluster gets varied state (queues with
  settings, a topic with two subscriptions, acked, nacked and released
  messages, a message with a long delay, no consumer attached and nothing
  unacked), then each node is stopped with SIGTERM (each must exit 0) and
  all three are started again. The replicas converge to the same state
  digest, every queue and topic reports the same settings, gauges and
  counters as before, the state dump has the same size and only the new
  leaders' entries were applied on top (the digest itself covers the
  replicated clock, which each new leadership's DETACH_STALE entry moves
  on, so it differs from the one before the restart), the nacked and
  released messages come back with their delivery count preserved, a
  msg_id published before is still deduplicated, and publishing works
  again.
- Crash of every node: after 800 confirmed publishes (single and batched)
  and while a publisher streams, kill -9 all three at once and start them
  again; every publish that was confirmed (before the crash, or after it
  by the client's retry with the same msg_id) is there exactly once,
  counted by queue_info and by consuming the queue, and nothing else.
- Snapshot install: with a small snapshot threshold and trailing, one
  follower is stopped, the others take several hundred log entries so the
  leader snapshots and truncates its log past the follower's last applied
  index; the follower is started again, must install the leader's snapshot
  (its snapshot_index > 0 and at least the leader's snapshot index at the
  time it was down), and converges to the same digest as the others.
"""
import os
import signal
import threading
import time

import raftmq


def queue_view(client):
    """Every queue's name, settings, gauges and counters."""
    out = {}
    for q in client.queue_list():
        out[q.name] = (q.topic, q.settings.SerializeToString(), q.ready,
                       q.unacked, q.delayed, q.bytes, q.consumers,
                       q.published, q.delivered, q.redelivered, q.acked,
                       q.nacked, q.released, q.dead_lettered, q.expired,
                       q.deduplicated, q.dropped, q.rejected)
    return out


def wait_for(pred, timeout, what):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = pred()
        if v:
            return v
        time.sleep(0.05)
    raise AssertionError("timed out after %.1f s waiting for %s"
                         % (timeout, what))


def drain(client, queue, expect, timeout=5.0, prefetch=200):
    """Consumes and acks everything in `queue`; returns the deliveries.
    Stops after `expect` deliveries plus a quiet period."""
    cid = client.consume(queue, prefetch=prefetch)
    got = []
    while True:
        d = client.next_delivery(timeout=timeout if len(got) < expect
                                 else 0.3)
        if d is None:
            break
        got.append(d)
        assert client.ack(cid, [d.tag]) == (1, 0)
    client.cancel(cid)
    return got


def test_full_restart_keeps_state(cluster):
    c = raftmq.Client(cluster.addresses())
    c.create_queue("dlq")
    c.create_queue("work", ack_timeout_ms=60000, max_deliveries=5,
                   dead_letter="dlq", max_length=10000)
    c.create_queue("later")
    c.create_topic("events")
    c.subscribe("events", "audit")
    c.subscribe("events", "mail", ttl_ms=600000)
    n = 200
    for i in range(n):
        c.publish("work", b"w%d" % i, msg_id="w-%d" % i)
    for i in range(30):
        c.publish(topic="events", body=b"e%d" % i, msg_id="e-%d" % i)
    # a delayed message far in the future: stays delayed across the restart
    c.publish("later", b"late", delay_ms=600000)
    # duplicates are counted
    c.publish("work", b"w0", msg_id="w-0")

    # pull 60 (fetch: nothing more is pushed to us): ack 30, nack 20
    # (a failed delivery), release 10 (not counted as failed)
    held = []
    while len(held) < 60:
        cid, ds = c.fetch("work", max_messages=60 - len(held), wait_ms=2000)
        assert ds, "fetch stalled after %d deliveries" % len(held)
        held.extend(ds)
    assert all(d.consumer_id == cid for d in held)
    tags = [d.tag for d in held]
    assert c.ack(cid, tags[:30]) == (30, 0)
    assert c.nack(cid, tags[30:50]) == (20, 0)
    assert c.release(cid, tags[50:60]) == (10, 0)
    again = {d.body for d in held[30:60]}
    # the consumer goes away: whatever it was redelivered returns to ready
    c.close()
    c = raftmq.Client(cluster.addresses())
    wait_for(lambda: c.queue_info("work").unacked == 0 and
             c.queue_info("work").consumers == 0, 10, "consumer released")
    before_view = queue_view(c)
    c.close()
    w = before_view["work"]
    assert w[2] == n - 30 and w[3] == 0  # ready, unacked
    assert before_view["later"][4] == 1  # delayed
    cluster.wait_converged()
    before = cluster.leader().status(digest=True)
    topics_before = [t.SerializeToString() for t in
                     raftmq.Client(cluster.addresses()).topic_list()]

    # SIGTERM each node, the current leader first (it transfers the
    # leadership before it goes); each must exit 0
    stopped = []
    while len(stopped) < len(cluster.nodes):
        lead = cluster.leader()
        node = lead if lead is not None else next(
            x for x in cluster.nodes if x not in stopped)
        t0 = time.monotonic()
        rc = node.stop(timeout=20)
        assert rc == 0, "node %d exited with %r after SIGTERM" % (node.id, rc)
        assert time.monotonic() - t0 < 15, "node %d slow to stop" % node.id
        stopped.append(node)

    for node in cluster.nodes:
        node.start()
    cluster.wait_ready(timeout=20)
    digest = cluster.wait_converged(timeout=20)
    after = cluster.leader().status(digest=True)
    # The state dump (hence the digest) includes the replicated clock, and
    # every new leadership commits a DETACH_STALE command stamped with the
    # leader's time, so the clock moves on across a restart. Everything
    # else must be identical: same dump size, same queues and topics, and
    # only the new leaders' few entries applied on top.
    assert after["state_bytes"] == before["state_bytes"], (before, after)
    assert after["messages"] == before["messages"]
    # Each leadership (up to one per stop as leadership is handed over,
    # and one after the start) appends at most a libraft barrier, the
    # node's barrier, the members' addresses and a DETACH_STALE.
    assert before["applied_index"] < after["applied_index"] <= \
        before["applied_index"] + 4 * 4, (before, after)
    if digest != before["state_digest"]:
        print("digest %s before the restart, %s after (clock advanced)"
              % (before["state_digest"], digest))

    c = raftmq.Client(cluster.addresses())
    assert queue_view(c) == before_view
    assert [t.SerializeToString() for t in c.topic_list()] == topics_before
    # the nacked and released ones come back with delivery count 2, the
    # rest with count 1; the acked ones are gone
    got = drain(c, "work", n - 30)
    assert len(got) == n - 30
    assert len({d.body for d in got}) == n - 30
    assert {d.body for d in got} == \
        {b"w%d" % i for i in range(n)} - {d.body for d in held[:30]}
    for d in got:
        if d.body in again:
            assert d.delivery_count == 2 and d.redelivered, d
        else:
            assert d.delivery_count == 1 and not d.redelivered, d
    # publishing works again, and a pre-restart msg id is still deduplicated
    seq, dup = c.publish("work", b"after")
    assert not dup
    seq0, dup0 = c.publish("work", b"w0", msg_id="w-0")
    assert dup0
    assert c.queue_info("events:audit").ready == 30
    assert c.queue_info("later").delayed == 1
    cluster.wait_converged()


def test_kill_all_and_restart(cluster):
    c = raftmq.Client(cluster.addresses())
    c.create_queue("q")
    confirmed = set()
    # single publishes and batches, all confirmed
    for i in range(300):
        c.publish("q", b"m%d" % i, msg_id="m-%d" % i)
        confirmed.add(b"m%d" % i)
    for b in range(10):
        bodies = [b"b%d-%d" % (b, i) for i in range(50)]
        res = c.publish_batch("q", bodies,
                              msg_ids=[x.replace(b"b", b"id", 1)
                                       for x in bodies])
        for body, (code, _, dup) in zip(bodies, res):
            assert code == 0 and not dup, (body, code)
            confirmed.add(body)
    c.close()

    # and a publisher streaming while every node is killed
    attempted = set()
    stop = threading.Event()
    errors = []

    def stream():
        p = raftmq.Client(cluster.addresses(), timeout=20)
        i = 0
        while not stop.is_set():
            body = b"s%d" % i
            attempted.add(body)
            try:
                p.publish("q", body, msg_id=b"s-%d" % i)
                confirmed.add(body)
            except (raftmq.Error, raftmq.ConnectionLost) as e:
                errors.append(e)  # outcome unknown: may or may not exist
            i += 1
        p.close()

    t = threading.Thread(target=stream, daemon=True)
    t.start()
    time.sleep(0.5)
    for node in cluster.nodes:
        node.proc.send_signal(signal.SIGKILL)
    for node in cluster.nodes:
        node.proc.wait(timeout=10)
    n_before = len(confirmed)
    for node in cluster.nodes:
        node.start()
    cluster.wait_ready(timeout=20)
    time.sleep(0.5)
    stop.set()
    t.join(timeout=30)
    assert not t.is_alive(), "publisher stuck"
    assert len(confirmed) > n_before, "no publish confirmed after restart"
    cluster.wait_converged(timeout=20)

    c = raftmq.Client(cluster.addresses())
    info = c.queue_info("q")
    assert info.unacked == 0
    got = drain(c, "q", info.ready)
    bodies = [d.body for d in got]
    assert len(bodies) == len(set(bodies)), "duplicates after restart"
    assert len(bodies) == info.ready == info.published
    lost = confirmed - set(bodies)
    assert not lost, "confirmed publishes lost: %s" % sorted(lost)[:20]
    unexpected = set(bodies) - confirmed - attempted
    assert not unexpected, sorted(unexpected)[:20]
    assert all(d.delivery_count == 1 for d in got)
    assert c.publish("q", b"after")[1] is False
    cluster.wait_converged()


def test_lagging_follower_installs_snapshot(make_cluster):
    cluster = make_cluster(3, extra=["--snapshot-threshold", "64",
                                     "--snapshot-trailing", "16"])
    lead = cluster.wait_leader()
    c = raftmq.Client(lead.client_address)
    c.create_queue("s")
    for i in range(20):
        c.publish("s", b"pre%d" % i, msg_id="pre-%d" % i)
    cluster.wait_converged()

    lag = next(n for n in cluster.nodes if n.id != lead.id)
    lag_applied = lag.status()["applied_index"]
    assert lag.stop() == 0

    # each publish waits for its confirm, so each is its own log entry;
    # consume and ack some so the snapshot holds a mixed state
    n = 400
    for i in range(n):
        c.publish("s", b"m%d" % i, msg_id="m-%d" % i)
    cid = c.consume("s", prefetch=100)
    for _ in range(100):
        d = c.next_delivery(timeout=5)
        assert d is not None
        c.ack(cid, [d.tag])
    c.cancel(cid)
    # Both remaining nodes must have snapshotted past the follower, so that
    # whichever leads when it returns has to send a snapshot. Snapshots are
    # taken after applies: keep a trickle of publishes going.
    live = [nd for nd in cluster.nodes if nd.id != lag.id]
    deadline = time.monotonic() + 40
    k = 0
    while True:
        sts = [nd.status() for nd in live]
        if all(st["snapshot_index"] > lag_applied + 16 and
               st["last_index"] - st["log_entries"] + 1 > lag_applied + 1
               for st in sts):
            break
        assert time.monotonic() < deadline, \
            "nodes did not snapshot past the follower: %s vs %d" % (
                sts, lag_applied)
        c.publish("s", b"t%d" % k, msg_id="t-%d" % k)
        k += 1
        time.sleep(0.1)
    n += k
    lead = cluster.wait_leader()
    lead_st = lead.status()
    code, metrics = lead.http("/metrics")
    assert code == 200
    snap_metric = next(int(line.split()[1]) for line in metrics.splitlines()
                       if line.startswith("raftmq_snapshot_index "))
    assert snap_metric >= lead_st["snapshot_index"]

    lag.start()
    digest = cluster.wait_converged(timeout=30)
    st = lag.status()
    # The leader's log starts past the follower's next entry, so it can only
    # have caught up by installing the leader's snapshot: its snapshot index
    # is at least the one the leader had before it came back.
    assert st["snapshot_index"] > lag_applied, st
    assert st["snapshot_index"] >= lead_st["snapshot_index"], (st, lead_st)
    assert digest == lead.status(digest=True)["state_digest"]

    # and it keeps working: the restarted node serves the same data
    c2 = raftmq.Client(lag.client_address)
    info = c2.queue_info("s")
    assert (info.ready, info.acked, info.published) == (n + 20 - 100, 100,
                                                        n + 20)
    c2.publish("s", b"after")
    cluster.wait_converged()


def test_background_snapshots_under_load(make_cluster):
    """Snapshots are dumped by a child process while the node goes on
    applying (consensus/cons_bgsnap.c): under a stream of publishes and
    acks every node takes several, each with a tail of entries applied
    meanwhile; replicas stay identical; a node killed and restarted
    restores from its own snapshot (dump + tail) to the same state; no dump
    file is left behind, and one a crash left is removed at start."""
    cluster = make_cluster(3, extra=["--snapshot-threshold", "200",
                                     "--snapshot-trailing", "64"])
    lead = cluster.wait_leader()
    c = raftmq.Client(cluster.addresses())
    c.create_queue("bg")
    cid = c.consume("bg", prefetch=50)
    acked = 0
    for b in range(150):
        res = c.publish_batch("bg", [b"x%d-%d" % (b, i) * 20
                                     for i in range(20)])
        assert all(code == 0 for code, _, _ in res)
        while True:
            d = c.next_delivery(timeout=0 if acked >= b * 10 else 2)
            if d is None:
                break
            assert c.ack(cid, [d.tag]) == (1, 0)
            acked += 1
    c.cancel(cid)
    cluster.wait_converged(timeout=30)
    for n in cluster.nodes:
        assert n.metric("raftmq_snapshots_background_total") >= 2, n.id
        assert n.metric("raftmq_snapshot_background_failures_total") == 0
        assert n.metric("raftmq_snapshot_fork_seconds_max") > 0
        assert not [f for f in os.listdir(n.data_dir)
                    if f.startswith("dump-")], n.id

    victim = next(n for n in cluster.nodes if n.id != lead.id)
    victim.kill()
    victim.proc.wait(timeout=10)
    stale = os.path.join(victim.data_dir, "dump-12345.tmp")
    with open(stale, "wb") as f:
        f.write(b"left by a crash")
    c.publish("bg", b"while-down")
    victim.start()
    digest = cluster.wait_converged(timeout=30)
    assert digest == victim.status(digest=True)["state_digest"]
    assert not os.path.exists(stale)
    assert victim.status()["snapshot_index"] > 0
    info = raftmq.Client(victim.client_address).queue_info("bg")
    assert info.published == 150 * 20 + 1
    assert info.acked == acked
    c.close()
    assert not cluster.crashes()
