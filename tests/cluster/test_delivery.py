"""What counts as a delivery, and looking at a queue without taking from it.

Leaving (issue 12, part 2). A queue with max_deliveries 3 and a dead-letter
queue holds five messages. Three times a client consumes with prefetch 10,
takes one message, acks it and leaves, as docs/getting-started.md does. The
broker pushed all the messages each time, so the client held some it never
handed to the application. Leaving gracefully (close, cancel, the end of a
`with` block; in Python and in libraftmq through take_one, the consuming
half of hello.c) must count none of them: nothing is dead-lettered and
every message reaches the application with delivery_count 1. A client that
dies without a goodbye still has its messages counted as failed, as before.

Peeking (part 3). `queue peek` and Client.peek() show messages without
taking them: twice on a queue with max_deliveries 2 leaves every counter as
it was and a later consumer gets delivery_count 1. A follower redirects a
Peek to the leader. Pages follow next_seq; held and delayed messages show
on request; an answer never exceeds the server's frame limit.

A burst of big deliveries (issue 14). A consumer with prefetch 1000
attaches to 600 messages of 128 KiB (75 MiB): the leader used to read and
encode them all in the loop iteration that applied the attach, blocked for
longer than the election timeout and lost the leadership (seen in CI with
29 MiB). Now deliveries past a 4 MiB window wait as small records and are
written as the socket drains: the leader keeps its term, its loop is never
blocked for half an election timeout, and every message arrives once, in
order. A second consumer that cancels after reading a few of a deep burst
leaves no message sent twice or lost.

One cluster serves the module (distinct queue names per test); its frame
limit is 1 MiB so that the frame-limit test needs only a few messages. The
permission test (a Peek needs the consume permission) runs its own
single-node cluster with auth on.
"""
import json
import os
import subprocess
import sys
import time

import pytest
import raftmq

from raftmq_cluster import Cluster, serve

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))


def built(env, *parts):
    p = os.environ.get(env)
    if p:
        return p
    for d in ("build/plain", "build/dev", "build/sanitize"):
        c = os.path.join(ROOT, d, *parts)
        if os.path.exists(c):
            return c
    raise RuntimeError("%s not found: build it or set %s" % (parts[-1], env))


@pytest.fixture(scope="module")
def cluster():
    yield from serve(Cluster(3, ["--max-frame-bytes", "1M",
                                 "--max-message-bytes", "256k"]))


def fill(addr, queue, n=5, max_deliveries=3):
    """Creates QUEUE (dead-lettering into QUEUE-dlq) holding n messages."""
    with raftmq.Client(addr) as c:
        c.create_queue(queue + "-dlq")
        c.create_queue(queue, max_deliveries=max_deliveries,
                       dead_letter=queue + "-dlq")
        for i in range(n):
            c.publish(queue, b"%s-%d" % (queue.encode(), i))


def drain(addr, queue):
    """Every message left in QUEUE, acked: [(body, delivery_count)]."""
    got = []
    with raftmq.Client(addr) as c:
        cid = c.consume(queue, prefetch=100)
        while True:
            d = c.next_delivery(timeout=1.0)
            if d is None:
                return got
            got.append((d.body, d.delivery_count))
            c.ack(cid, [d.tag])


def assert_counted_nothing(addr, queue, taken):
    """The three messages taken came with delivery_count 1, the two left
    too, and nothing was dead-lettered or counted as a redelivery."""
    b = queue.encode()
    assert taken == [(b"%s-%d" % (b, i), 1) for i in range(3)]
    with raftmq.Client(addr) as c:
        assert c.queue_info(queue + "-dlq").ready == 0
        info = c.queue_info(queue)
        assert (info.dead_lettered, info.redelivered) == (0, 0)
    assert drain(addr, queue) == [(b + b"-3", 1), (b + b"-4", 1)]
    assert drain(addr, queue + "-dlq") == []


@pytest.mark.parametrize("how", ["close", "cancel", "with"])
def test_python_leaving_counts_no_unseen_delivery(cluster, how):
    addr = cluster.addresses()
    queue = "py-" + how
    fill(addr, queue)
    taken = []
    for _ in range(3):
        if how == "with":
            with raftmq.Client(addr) as c:
                cid = c.consume(queue, prefetch=10)
                d = c.next_delivery(timeout=5.0)
                c.ack(cid, [d.tag])
        else:
            c = raftmq.Client(addr)
            cid = c.consume(queue, prefetch=10)
            d = c.next_delivery(timeout=5.0)
            c.ack(cid, [d.tag])
            if how == "cancel":
                c.cancel(cid)
            c.close()
        taken.append((d.body, d.delivery_count))
    assert_counted_nothing(addr, queue, taken)


def take_one(addr, queue, how):
    p = subprocess.run([built("RAFTMQ_TAKE_ONE", "tests", "cluster",
                              "take_one"), addr, queue, "10", how],
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, (p.stdout, p.stderr)
    fields = dict(kv.split("=") for kv in p.stdout.split())
    return fields["body"].encode(), int(fields["delivery_count"])


@pytest.mark.parametrize("how", ["close", "cancel"])
def test_c_library_leaving_counts_no_unseen_delivery(cluster, how):
    addr = cluster.addresses()
    queue = "c-" + how
    fill(addr, queue)
    taken = [take_one(addr, queue, how) for _ in range(3)]
    assert_counted_nothing(addr, queue, taken)


def test_a_client_that_dies_still_counts(cluster):
    """No goodbye: what the connection held counts as a failed delivery
    (max_deliveries 1 here: straight to the dead-letter queue)."""
    addr = cluster.addresses()
    fill(addr, "crash", n=3, max_deliveries=1)
    assert take_one(addr, "crash", "crash")[1] == 1
    with raftmq.Client(addr) as c:
        deadline = time.monotonic() + 10
        while c.queue_info("crash-dlq").ready < 2:
            assert time.monotonic() < deadline, c.queue_info("crash-dlq")
            time.sleep(0.05)
        assert c.queue_info("crash").dead_lettered == 2


def cli(addr, *args):
    p = subprocess.run([built("RAFTMQ_CLI", "client", "cli", "raftmq"),
                        "--cluster", addr] + [str(a) for a in args],
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 0 and p.stderr == "", (p.returncode, p.stdout,
                                                  p.stderr)
    return [json.loads(line) for line in p.stdout.splitlines() if line]


def test_consume_no_ack_is_not_a_failed_delivery(cluster):
    """`consume --no-ack` twice on max_deliveries 2: the messages come back
    (delivered again, so delivery_count grows) but never dead-lettered."""
    addr = cluster.addresses()
    fill(addr, "noack", n=2, max_deliveries=2)
    for run in (1, 2):
        lines = cli(addr, "consume", "noack", "--no-ack", "--timeout", "300")
        assert [(m["body"], m["delivery_count"]) for m in lines] == \
            [("noack-0", run), ("noack-1", run)]
    with raftmq.Client(addr) as c:
        assert c.queue_info("noack").dead_lettered == 0
        assert c.queue_info("noack").ready == 2


def test_peek_twice_changes_nothing(cluster):
    addr = cluster.addresses()
    fill(addr, "pk", n=3, max_deliveries=2)
    with raftmq.Client(addr) as c:
        before = c.queue_info("pk")
        for _ in range(2):
            msgs, nxt = c.peek("pk", max_messages=10)
            assert nxt == 0
            assert [(m.body, m.delivery_count, m.redelivered, m.state,
                     m.consumer_id) for m in msgs] == \
                [(b"pk-%d" % i, 0, False, "ready", 0) for i in range(3)]
            assert [m.tag for m in msgs] == sorted(m.tag for m in msgs)
            lines = cli(addr, "queue", "peek", "pk")
            assert [(m["seq"], m["body"], m["delivery_count"],
                     m["redelivered"], m["state"]) for m in lines] == \
                [(m.tag, "pk-%d" % i, 0, False, "ready")
                 for i, m in enumerate(msgs)]
            assert set(lines[0]) == {"id", "seq", "body", "delivery_count",
                                     "redelivered", "state"}
        after = c.queue_info("pk")
        assert (after.ready, after.unacked, after.delivered,
                after.redelivered, after.dead_lettered, after.dropped) == \
            (3, 0, 0, 0, 0, 0)
        assert before.delivered == after.delivered
        assert c.queue_info("pk-dlq").ready == 0
        # --from and --max page through it.
        lines = cli(addr, "queue", "peek", "pk", "--from", msgs[1].tag,
                    "--max", 1)
        assert [m["body"] for m in lines] == ["pk-1"]
    assert drain(addr, "pk") == [(b"pk-%d" % i, 1) for i in range(3)]


def test_peek_at_a_follower_is_redirected(cluster):
    lead = cluster.wait_leader()
    f = next(n for n in cluster.nodes if n.id != lead.id)
    fill(lead.client_address, "pkf", n=2)
    c = raftmq.Client(f.client_address)
    try:
        c.call(retry=False, peek=raftmq.pb.Peek(queue="pkf", max_messages=5))
        raise AssertionError("a follower answered a Peek")
    except raftmq.Error as e:
        assert e.code == raftmq.pb.ERROR_CODE_NOT_LEADER
        assert e.leader == lead.client_address
    msgs, _ = c.peek("pkf", max_messages=5)  # follows the redirect
    assert [m.body for m in msgs] == [b"pkf-0", b"pkf-1"]
    c.close()
    lines = cli(f.client_address, "queue", "peek", "pkf")
    assert [m["body"] for m in lines] == ["pkf-0", "pkf-1"]


def test_peek_pages_held_delayed_and_missing(cluster):
    addr = cluster.addresses()
    with raftmq.Client(addr) as c:
        c.create_queue("pg")
        for i in range(0, 1200, 200):
            c.publish_batch("pg", [b"%d" % j for j in range(i, i + 200)])
        msgs, nxt = c.peek("pg", max_messages=5000)
        assert len(msgs) == 1000 and nxt == msgs[-1].tag + 1
        rest, end = c.peek("pg", max_messages=5000, from_seq=nxt)
        assert len(rest) == 200 and end == 0
        assert [m.body for m in msgs + rest] == \
            [b"%d" % j for j in range(1200)]
        lines = cli(addr, "queue", "peek", "pg", "--max", 1100)
        assert [m["body"] for m in lines] == ["%d" % j for j in range(1100)]

        c.create_queue("hd")
        for i in range(3):
            c.publish("hd", b"h%d" % i)
        c.publish("hd", b"later", delay_ms=600000)
        with raftmq.Client(addr) as holder:
            cid = holder.consume("hd", prefetch=2)
            assert holder.next_delivery(timeout=5) is not None
            plain, _ = c.peek("hd")
            assert [m.body for m in plain] == [b"h2"]
            every, _ = c.peek("hd", held=True, delayed=True)
            assert [(m.body, m.state) for m in every] == \
                [(b"h0", "held"), (b"h1", "held"), (b"h2", "ready"),
                 (b"later", "delayed")]
            assert every[0].consumer_id == cid and every[0].due_ms > 0
            assert every[0].delivery_count == 1 and every[0].redelivered
            assert every[3].due_ms > every[0].due_ms
            lines = cli(addr, "queue", "peek", "hd", "--held", "--delayed")
            assert [m["state"] for m in lines] == \
                ["held", "held", "ready", "delayed"]
        try:
            c.peek("no-such-queue")
            raise AssertionError("peek of a missing queue succeeded")
        except raftmq.Error as e:
            assert e.code == raftmq.pb.ERROR_CODE_NOT_FOUND
            assert '"no-such-queue"' in e.message


def test_peek_answer_fits_in_a_frame(cluster):
    """Six bodies of 200 KiB do not fit in one 1 MiB frame: the answer
    stops early with next_seq, and the CLI follows it."""
    addr = cluster.addresses()
    body = b"x" * (200 * 1024)
    with raftmq.Client(addr) as c:
        c.create_queue("big")
        for _ in range(6):
            c.publish("big", body)
        msgs, nxt = c.peek("big", max_messages=6)
        assert 0 < len(msgs) < 6 and nxt == msgs[-1].tag + 1
        rest, end = c.peek("big", max_messages=6, from_seq=nxt)
        assert len(msgs) + len(rest) == 6 or end != 0
    lines = cli(addr, "queue", "peek", "big")
    assert len(lines) == 6 and all(len(m["body"]) == len(body)
                                   for m in lines)


def test_peek_needs_the_consume_permission():
    """With auth on, peeking is allowed to whoever may consume the queue
    (bob may consume events.*, publish to logs.*)."""
    from raftmq_secure import TOKENS, secure_cluster
    sc = secure_cluster(1, tls=False)
    try:
        sc.start()
        with raftmq.Client(sc.addresses(), token=TOKENS["admin"]) as adm:
            for q in ("events.q", "logs.q"):
                adm.create_queue(q)
                adm.publish(q, b"m")
        with raftmq.Client(sc.addresses(), token=TOKENS["bob"]) as bob:
            msgs, _ = bob.peek("events.q")
            assert [m.body for m in msgs] == [b"m"]
            with pytest.raises(raftmq.Error) as e:
                bob.peek("logs.q")
            assert e.value.code == raftmq.pb.ERROR_CODE_PERMISSION_DENIED
            assert "consume" in e.value.message, e.value.message
        assert not sc.crashes()
    except BaseException:
        sys.stderr.write(sc.logs())
        raise
    finally:
        sc.cleanup()


def publish_big(c, queue, n, size=128 << 10):
    body = b"b" * size
    ids = [b"%s-%d" % (queue.encode(), i) for i in range(n)]
    for i in range(0, n, 6):  # under the 1 MiB frame limit
        c.publish_batch(queue, [body] * len(ids[i:i + 6]),
                        msg_ids=ids[i:i + 6])
    return ids


def test_a_burst_of_big_deliveries_keeps_the_leader(cluster):
    with raftmq.Client(cluster.addresses(), timeout=30) as c:
        c.create_queue("burst")
        ids = publish_big(c, "burst", 600)
        lead = cluster.wait_leader()
        term = lead.status()["term"]
        cid = c.consume("burst", prefetch=1000)
        got = []
        while True:
            d = c.next_delivery(timeout=10 if len(got) < len(ids) else 0.5)
            if d is None:
                break
            got.append(d.msg_id)
            if len(got) % 50 == 0:
                c.ack(cid, [d.tag])  # redirect retries only: same leader
        assert got == ids, "%d of %d arrived, in order: %s" % (
            len(got), len(ids), got[:1] == ids[:1])
        assert cluster.leader() is lead and lead.status()["term"] == term, \
            "the leader changed while it delivered 75 MiB"
        stall = lead.metric("raftmq_loop_stall_seconds_max")
        print("leader's longest loop stall %.3f s" % stall)
        assert stall < 0.5, "the leader's loop was blocked %.3f s" % stall
        assert lead.metric("raftmq_deliveries_deferred_total") > 0
        c.cancel(cid)


def test_cancel_during_a_burst_loses_and_repeats_nothing(cluster):
    with raftmq.Client(cluster.addresses(), timeout=30) as c:
        c.create_queue("burst2")
        ids = publish_big(c, "burst2", 200)
        cid = c.consume("burst2", prefetch=1000)
        first = []
        for _ in range(5):
            d = c.next_delivery(timeout=10)
            first.append(d.msg_id)
            c.ack(cid, [d.tag])
        c.cancel(cid)  # most of the 200 were never written to the socket
        cid = c.consume("burst2", prefetch=1000)
        rest = []
        while True:
            d = c.next_delivery(timeout=10 if len(rest) < 195 else 0.5)
            if d is None:
                break
            assert d.delivery_count == 1, d.msg_id
            rest.append(d.msg_id)
            c.ack(cid, [d.tag])
    assert first + rest == ids
