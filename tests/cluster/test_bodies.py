"""Message bodies a follower lacks after installing a snapshot, fetched
from its peers (docs/architecture.md, "Bodies a node lacks").

Scenarios (each on a 3-node cluster with a small snapshot threshold):
- Plain: a follower is stopped, messages with varied bodies (empty, small,
  64 KiB, a msg_id each) are published until both other nodes have
  snapshotted past it, the follower is started again and installs the
  leader's snapshot, whose index names bodies it never applied. Its
  raftmq_store_missing_bodies must be 0 within a bound (with the bodies
  counted in raftmq_store_fetched_bodies_total, and the log saying when they
  were found missing and when all arrived); then leadership is transferred
  to it and every message is consumed from it with the right bytes.
- kill -9 of that follower while its bodies arrive (30 000 of 1 KiB):
  started again, it fetches only what is still missing and, as leader,
  delivers every message with its bytes.
- Auth and TLS with client certificates, [cluster] peer_token_file holding
  an admin's token: the same install, and the bodies arrive (over TLS,
  verified against tls_ca, the node's certificate as the client's).
- Auth without peer_token_file: the bodies cannot be fetched; the node says
  so in one sentence, stays not ready (/healthz/ready 503 naming the
  missing bodies) and its gauge stays above 0. A FetchBodies from a user
  without admin is refused with PERMISSION_DENIED, from an admin answered
  by any node (a follower too) from its own store.
"""
import os
import re
import ssl
import sys
import time

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "lib"))

import raftmq  # noqa: E402
from raftmq import pb  # noqa: E402
from raftmq_secure import TOKENS, secure_cluster  # noqa: E402

# Snapshots taken in place: a snapshot dumped by a child holds the entries
# applied during the dump as a tail, which the follower applies, bodies
# included; in place, the dump names every body by its key only.
SNAPSHOTS = ["--snapshot-threshold", "64", "--snapshot-trailing", "16",
             "--snapshot-in-place", "on"]
# How long a restarted follower may take to install the snapshot and fetch
# what it lacks (a few hundred KiB here; generous for a loaded machine).
FETCH_BOUND = 60


def wait_for(pred, timeout, what):
    """Waits until pred() is true; a node not answering yet counts as
    false."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            v = pred()
        except OSError:
            v = None
        if v:
            return v
        time.sleep(0.1)
    raise AssertionError("timed out after %.1f s waiting for %s"
                         % (timeout, what))


def body_of(i):
    """Bodies of several sizes, each one different."""
    if i % 50 == 0:
        return b""
    if i % 97 == 0:
        return (b"big-%d-" % i) * (65536 // 10)
    return b"body-%d-" % i + bytes([i % 251]) * (i % 300)


def install_on_restart(cluster, client, queue, lag=None, bulk=0,
                       started=None):
    """Stops a follower (`lag`, else any), publishes to `queue` (first
    `bulk` messages of 1 KiB in batches of 500) until both other nodes have
    snapshotted past it, starts it again and waits until it has installed a
    snapshot (or calls started(lag) instead). Returns (lag, {msg_id:
    body})."""
    lead = cluster.wait_leader()
    client.create_queue(queue)
    sent = {}
    for i in range(20):
        mid = b"pre-%d" % i
        client.publish(queue, body_of(i), msg_id=mid)
        sent[mid] = body_of(i)
    cluster.wait_converged()
    if lag is None:
        lag = next(n for n in cluster.nodes if n.id != lead.id)
    lag_applied = lag.status()["applied_index"]
    assert lag.stop() == 0

    # Batches of 20 (one log entry each) and single publishes, until both
    # others have snapshotted and dropped the entries the follower needs.
    # A snapshot index is reported before raft has written that snapshot
    # and dropped the log before it: wait for a second snapshot past the
    # follower, taken after the first one's truncation.
    live = [n for n in cluster.nodes if n.id != lag.id]
    for b in range(0, bulk, 500):
        ids = [b"bulk-%d" % (b + k) for k in range(500)]
        bodies = [(b"%08d" % (b + k)) * 128 for k in range(500)]
        res = client.publish_batch(queue, bodies, msg_ids=ids)
        assert all(code == 0 for code, _, _ in res), res[:3]
        sent.update(zip(ids, bodies))
    i = 20
    deadline = time.monotonic() + 60
    while True:
        ids = [b"m-%d" % (i + k) for k in range(20)]
        bodies = [body_of(i + k) for k in range(20)]
        res = client.publish_batch(queue, bodies, msg_ids=ids)
        assert all(code == 0 for code, _, _ in res), res
        sent.update(zip(ids, bodies))
        i += 20
        mid = b"m-%d" % i
        client.publish(queue, body_of(i), msg_id=mid)
        sent[mid] = body_of(i)
        i += 1
        sts = [n.status() for n in live]
        if i > 600 and all(st["snapshot_index"] > lag_applied + 2 * 64
                           for st in sts):
            break
        assert time.monotonic() < deadline, \
            "nodes did not snapshot past the follower: %s" % sts
    lead_snap = cluster.wait_leader().status()["snapshot_index"]

    lag.start()
    if started is not None:
        started(lag)
    else:
        wait_for(lambda: lag.status()["snapshot_index"] >= lead_snap, 30,
                 "the follower to install the leader's snapshot")
    return lag, sent


def fetched_all(lag):
    wait_for(lambda: lag.metric("raftmq_store_missing_bodies") == 0,
             FETCH_BOUND, "the missing bodies to be fetched")
    assert lag.metric("raftmq_store_fetched_bodies_total") > 0
    log = lag.log()
    found = re.search(r"(\d+) message bodies are missing", log)
    assert found, "no log line saying bodies were missing"
    assert int(found.group(1)) > 0
    assert re.search(r"all \d+ missing message bodies are here after "
                     r"[0-9.]+ s \(\d+ fetched from peers\)", log), \
        "no log line saying all bodies arrived"


def fetch_all(client, keys, max_bytes=0):
    """FetchBodies until every key was answered or left out: an answer may
    stop for room or time after any record, so ask again for the keys after
    the last one answered. Returns {key: BodyRecord}."""
    out = {}
    keys = sorted(keys)
    while keys:
        recs = client.fetch_bodies(keys, max_bytes=max_bytes)
        if not recs:
            break
        for r in recs:
            out[r.key] = r
        keys = [k for k in keys if k > recs[-1].key]
    return out


def peek_all(client, queue):
    """Every message of the queue (seq = its body key here: one queue, no
    dead-lettering)."""
    out, seq = [], 0
    while True:
        msgs, seq = client.peek(queue, max_messages=1000, from_seq=seq)
        out += msgs
        if seq == 0:
            return out


def consume_all(client, queue, expect):
    """Consumes and acks `queue` until `expect` ({msg_id: body}) is all
    there; checks every body."""
    cid = client.consume(queue, prefetch=1000)
    got = {}
    tags = []
    while len(got) < len(expect):
        d = client.next_delivery(timeout=10)
        assert d is not None, "only %d of %d delivered" % (len(got),
                                                           len(expect))
        assert d.msg_id in expect, d.msg_id
        assert d.body == expect[d.msg_id], \
            "message %r: %d bytes, expected %d" % (
                d.msg_id, len(d.body), len(expect[d.msg_id]))
        got[d.msg_id] = True
        tags.append(d.tag)
        if len(tags) == 500 or len(got) == len(expect):
            assert client.ack(cid, tags) == (len(tags), 0)
            tags = []
    client.cancel(cid)


def test_follower_fetches_bodies_and_serves_as_leader(make_cluster):
    cluster = make_cluster(3, extra=SNAPSHOTS)
    c = raftmq.Client(cluster.addresses())
    lag, sent = install_on_restart(cluster, c, "q")
    fetched_all(lag)
    cluster.wait_converged(timeout=30)
    assert lag.http("/healthz/ready")[0] == 200

    # The node that had to fetch becomes the leader and delivers all.
    c.cluster_transfer(lag.id)
    wait_for(lambda: lag.status()["state"] == "leader", 20,
             "node %d to lead" % lag.id)
    c.close()
    on_lag = raftmq.Client(lag.client_address)
    consume_all(on_lag, "q", sent)
    assert on_lag.node_id == lag.id, "consumed from node %d" % on_lag.node_id
    assert on_lag.queue_info("q").ready == 0
    on_lag.close()


def test_kill_during_a_transfer_resumes_after_restart(make_cluster):
    """kill -9 of the fetching node while its bodies arrive: started again,
    it fetches the rest (progress is its store: what it stored before the
    kill is no longer missing) and serves every message as leader."""
    cluster = make_cluster(3, extra=SNAPSHOTS)
    c = raftmq.Client(cluster.addresses(), timeout=30)
    seen = {}

    def kill_mid_transfer(lag):
        # ~30 MB arrive in about half a second here: poll closely.
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                missing = lag.metric("raftmq_store_missing_bodies")
                fetched = lag.metric("raftmq_store_fetched_bodies_total")
            except (OSError, KeyError):
                time.sleep(0.005)
                continue
            if fetched > 0:
                assert missing > 0, "the transfer ended before the kill"
                lag.kill()
                seen["fetched"], seen["missing"] = fetched, missing
                return
            time.sleep(0.005)
        raise AssertionError("no transfer seen")

    lag, sent = install_on_restart(cluster, c, "k", bulk=30000,
                                   started=kill_mid_transfer)
    assert not lag.alive()
    lag.start()
    fetched_all(lag)
    # Only what was still missing is fetched after the restart (the
    # counter starts again at 0 with the process; bodies stored between
    # the last look and the kill only make it smaller).
    after = lag.metric("raftmq_store_fetched_bodies_total")
    assert 0 < after <= seen["missing"], (seen, after)
    cluster.wait_converged(timeout=30)
    c.cluster_transfer(lag.id)
    wait_for(lambda: lag.status()["state"] == "leader", 20,
             "node %d to lead" % lag.id)
    c.close()
    on_lag = raftmq.Client(lag.client_address, timeout=30)
    consume_all(on_lag, "k", sent)
    assert on_lag.node_id == lag.id
    on_lag.close()


def admin_token_file(cluster):
    path = os.path.join(cluster.dir, "admin.token")
    with open(path, "w") as f:
        f.write(TOKENS["admin"] + "\n")
    os.chmod(path, 0o600)
    return path


def cert_context(cluster):
    ctx = ssl.create_default_context(cafile=cluster.files["ca"])
    ctx.load_cert_chain(cluster.files["client_cert"],
                        cluster.files["client_key"])
    return ctx


def test_fetch_with_auth_and_tls():
    cluster = secure_cluster(3, client_certs=True, extra=SNAPSHOTS)
    cluster.extra += ["--peer-token-file", admin_token_file(cluster)]
    try:
        cluster.start()
        admin = raftmq.Client(cluster.addresses(), timeout=10,
                              token=TOKENS["admin"],
                              ssl_context=cert_context(cluster))
        lag, sent = install_on_restart(cluster, admin, "orders.a")
        fetched_all(lag)
        cluster.wait_converged(timeout=30)
        assert lag.metric("raftmq_store_fetch_errors_total") == 0
        # It now serves every body itself, as fetched, sums included.
        seqs = [m.tag for m in peek_all(admin, "orders.a")]
        assert len(seqs) == len(sent)
        on_lag = raftmq.Client(lag.client_address, timeout=10,
                               token=TOKENS["admin"],
                               ssl_context=cert_context(cluster))
        recs = fetch_all(on_lag, seqs)
        assert on_lag.node_id == lag.id
        assert {r.msg_id: r.body for r in recs.values()} == sent
        assert all(r.sum != 0 for r in recs.values())
        on_lag.close()
        admin.close()
        assert not cluster.crashes()
    except BaseException:
        sys.stderr.write(cluster.logs())
        raise
    finally:
        cluster.cleanup()


def test_without_peer_token_nothing_is_fetched_and_the_node_says_why():
    cluster = secure_cluster(3, tls=False, extra=SNAPSHOTS)
    try:
        cluster.start()
        admin = raftmq.Client(cluster.addresses(), timeout=10,
                              token=TOKENS["admin"])
        lag, sent = install_on_restart(cluster, admin, "orders.b")
        wait_for(lambda: "cannot be fetched: auth is on" in lag.log(), 20,
                 "the sentence saying why nothing is fetched")
        assert "peer_token_file is not set" in lag.log()
        time.sleep(1)
        missing = lag.metric("raftmq_store_missing_bodies")
        assert missing > 0
        assert lag.metric("raftmq_store_fetched_bodies_total") == 0
        code, why = lag.http("/healthz/ready")
        assert code == 503, (code, why)
        assert "%d message bodies missing" % missing in why, why
        assert "peer_token_file is not set" in why, why

        # FetchBodies: refused without admin, on any node
        keys = [m.tag for m in peek_all(admin, "orders.b")]
        assert len(keys) == len(sent)
        for node in cluster.nodes:
            alice = raftmq.Client(node.client_address, timeout=10,
                                  token=TOKENS["alice"])
            with pytest.raises(raftmq.Error) as e:
                alice.fetch_bodies(keys)
            assert e.value.code == pb.ERROR_CODE_PERMISSION_DENIED
            assert "fetch_bodies needs admin = true" in e.value.message
            alice.close()
        # answered by an admin on every node from its own store: the
        # follower has all but the missing ones
        counts = {}
        for node in cluster.nodes:
            adm = raftmq.Client(node.client_address, timeout=10,
                                token=TOKENS["admin"])
            recs = fetch_all(adm, keys)
            assert adm.node_id == node.id
            assert all(r.msg_id in sent and r.body == sent[r.msg_id]
                       for r in recs.values())
            counts[node.id] = len(recs)
            adm.close()
        assert counts[lag.id] == len(keys) - missing, (counts, missing)
        assert all(counts[n.id] == len(keys) for n in cluster.nodes
                   if n.id != lag.id), counts
        admin.close()
        assert not cluster.crashes()
    except BaseException:
        sys.stderr.write(cluster.logs())
        raise
    finally:
        cluster.cleanup()
