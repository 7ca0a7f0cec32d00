"""What operators and new users see, on a real 3-node cluster:

test_status_from_every_node: with all three nodes up, /v1/status of every
node (leader and followers) reports no member as unreachable. A follower
cannot see the other follower: it says null ("unknown"), never false; it
sees itself and the leader (whose last contact is recent).

test_idle_connections_closed / test_idle_tls_connections_closed: with
hello_timeout_ms = 1500, a connection that sends nothing, one stuck in its
TLS handshake and one that finished TLS but sent no Hello (auth on) are
closed after about 1.5 s and counted in
raftmq_connections_idle_closed_total; a connection that said Hello stays;
the followers' leader-watch connections (idle on purpose, plain TCP even on
a TLS port) are not closed, so no election follows.

test_name_grammar: the node refuses new queue, topic and subscription
names outside the grammar (docs/queue.md, "Names") with INVALID_ARGUMENT
naming the bad byte and its position (sent raw, past the Python client,
which refuses the same names before sending); after `create queue x:y` is
refused, `create topic x` and `subscribe x y` make the queue x:y.

test_sentences_keep_the_reason: with a 256-byte name the sentence quotes
the name shortened and keeps the whole reason; ALREADY_EXISTS names the
settings that differ.

test_dead_letter_queue_must_exist: create, configure and subscribe with a
dead-letter queue that does not exist are refused (NOT_FOUND) and change
nothing; a queue cannot be its own dead-letter queue.

test_membership_refusals_say_which: transfer to the leader itself, to a
node that is not a member, removing a non-member and adding a member
again each say which.
"""
import os
import socket
import ssl
import sys
import time

import pytest

import raftmq
from raftmq import pb

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "lib"))

from raftmq_cluster import serve  # noqa: E402
from raftmq_raw import raw_tls, recv, send  # noqa: E402
from raftmq_secure import TOKENS, secure_cluster  # noqa: E402

HELLO_TIMEOUT_MS = 1500


def test_status_from_every_node(cluster):
    lead = cluster.wait_leader()
    c = raftmq.Client(cluster.addresses())
    c.create_queue("q")
    c.publish("q", b"x")
    c.close()
    cluster.wait_converged()
    # Longer than two election timeouts (the leader's reachability window)
    # on an idle cluster: what was reachable must still be.
    time.sleep(2.5)
    for n in cluster.nodes:
        st = n.status()
        assert st["node_id"] == n.id
        assert st["leader_id"] == lead.id, st
        views = {m["id"]: m for m in st["nodes"]}
        assert sorted(views) == [1, 2, 3], st
        for m in views.values():
            # Never a false alarm on a healthy cluster.
            assert m["reachable"] is not False, (n.id, m)
            if n is lead or m["id"] in (n.id, lead.id):
                assert m["reachable"] is True, (n.id, m)
            else:
                assert m["reachable"] is None, (n.id, m)
                assert m["last_contact_ms"] is None, (n.id, m)
        if n is not lead:
            # Heartbeats every 100 ms by default.
            assert 0 <= views[lead.id]["last_contact_ms"] < 1000, st
        else:
            for m in views.values():
                if m["id"] != n.id:
                    assert 0 <= m["last_contact_ms"] < 2000, st


# ------------------------------------------------------- idle connections


def closed_after(s, t0):
    """Seconds from t0 until the peer closed s (reading what it sends)."""
    s.settimeout(10)
    while True:
        try:
            chunk = s.recv(65536)
        except (ConnectionResetError, ssl.SSLError):
            break
        if not chunk:
            break
    return time.monotonic() - t0


def quiet_cluster(c):
    """Leader, term and the followers' election counts, to show that
    nothing changed later."""
    lead = c.wait_leader()
    return lead.id, lead.status()["term"], {
        n.id: n.metric("raftmq_raft_elections_total") for n in c.nodes}


def test_idle_connections_closed(make_cluster):
    c = make_cluster(3, extra=["--hello-timeout-ms", str(HELLO_TIMEOUT_MS)])
    lead = c.wait_leader()
    before = quiet_cluster(c)
    port = lead.client_port
    t0 = time.monotonic()
    idle = socket.create_connection(("127.0.0.1", port), timeout=5)
    greeted = socket.create_connection(("127.0.0.1", port), timeout=5)
    send(greeted, 1, hello=pb.Hello(protocol_version=1))
    assert recv(greeted).WhichOneof("body") == "hello_result"

    idle.settimeout(10)
    env = recv(idle)
    assert env is not None and env.correlation_id == 0, env
    assert env.error.code == pb.ERROR_CODE_RESOURCE_LIMIT, env
    assert "hello_timeout_ms" in env.error.message, env
    took = closed_after(idle, t0)
    assert 1.2 < took < 4.0, took
    idle.close()

    # Well past the timeout for the followers' watches (connected when the
    # leader was elected) and for the greeted client: both still open.
    time.sleep(max(0, t0 + 2 * HELLO_TIMEOUT_MS / 1000 - time.monotonic()))
    send(greeted, 2, queue_list=pb.QueueList())
    assert recv(greeted).WhichOneof("body") == "queue_list_result"
    greeted.close()
    assert lead.metric("raftmq_connections_idle_closed_total") == 1
    assert quiet_cluster(c) == before
    for n in c.nodes:
        assert "is gone" not in n.log(), n.id


def test_idle_tls_connections_closed():
    c = secure_cluster(3, extra=["--hello-timeout-ms", str(HELLO_TIMEOUT_MS)])
    for c in serve(c):
        lead = c.wait_leader()
        before = quiet_cluster(c)
        t0 = time.monotonic()
        # The start of a TLS record header, and nothing more.
        stuck = socket.create_connection(("127.0.0.1", lead.client_port),
                                         timeout=5)
        stuck.sendall(b"\x16\x03\x01")
        # TLS done, no Hello: auth is on, so only a Hello counts; a request
        # before it is refused and does not count either.
        silent = raw_tls(c, lead)
        send(silent, 3, queue_list=pb.QueueList())
        assert recv(silent).error.code == pb.ERROR_CODE_UNAUTHENTICATED
        greeted = raw_tls(c, lead)
        send(greeted, 1, hello=pb.Hello(protocol_version=1,
                                        auth_token=TOKENS["admin"]))
        assert recv(greeted).WhichOneof("body") == "hello_result"

        took = closed_after(stuck, t0)
        assert 1.2 < took < 4.0, took
        silent.settimeout(10)
        env = recv(silent)
        assert env is not None and "no Hello within" in env.error.message, \
            env
        assert closed_after(silent, t0) < 4.0
        time.sleep(max(0, t0 + 2 * HELLO_TIMEOUT_MS / 1000 -
                       time.monotonic()))
        send(greeted, 2, queue_list=pb.QueueList())
        assert recv(greeted).WhichOneof("body") == "queue_list_result"
        for s in (stuck, silent, greeted):
            s.close()
        assert lead.metric("raftmq_connections_idle_closed_total") == 2
        assert quiet_cluster(c) == before
        for n in c.nodes:
            assert "is gone" not in n.log(), n.id


# ------------------------------------------------------------------ names


def raw_client(node):
    s = socket.create_connection(("127.0.0.1", node.client_port), timeout=5)
    send(s, 1, hello=pb.Hello(protocol_version=1))
    assert recv(s).WhichOneof("body") == "hello_result"
    return s


def refused(s, corr, code, *words, **body):
    send(s, corr, **body)
    env = recv(s)
    assert env.WhichOneof("body") == "error", (body, env)
    assert env.error.code == code, (body, env.error)
    for w in words:
        assert w in env.error.message, (w, env.error.message)
    return env.error.message


BAD_NAMES = [
    ("a b", "a space at position 2 is not allowed"),
    ("x:y", "':' at position 2 is reserved for subscription queues"),
    ("caf\u00e9", "byte 0xc3 at position 4 is not allowed (not ASCII)"),
    ("a*", "'*' at position 2 is reserved for routing patterns"),
    ("a>", "'>' at position 2 is reserved for routing patterns"),
    ("#a", "'#' at position 1 is reserved for routing patterns"),
    ("a/b", "'/' at position 2 is not allowed"),
    ("q@x", "'@' at position 2 is not allowed"),
    ("", "the name is empty"),
    ("n" * 256, "256 bytes long, over the limit of 255"),
]


def test_name_grammar(cluster):
    lead = cluster.wait_leader()
    s = raw_client(lead)
    inval = pb.ERROR_CODE_INVALID_ARGUMENT
    c = raftmq.Client(cluster.addresses())
    for i, (name, why) in enumerate(BAD_NAMES):
        refused(s, 10 + i, inval, "invalid name", why,
                create_queue=pb.CreateQueue(name=name))
        refused(s, 30 + i, inval, "topic", "invalid name", why,
                create_topic=pb.CreateTopic(name=name))
        with pytest.raises(raftmq.Error) as e:
            c.create_queue(name)
        assert e.value.code == inval and why in e.value.message, e.value
    assert c.queue_list() == []
    assert c.topic_list() == []
    # The letters, digits and . _ - of RabbitMQ, Kafka and NATS names.
    for name in ("orders", "orders.eu-west_1", "A-Z.0-9", "n" * 255):
        c.create_queue(name)
    # ':' joins a topic and a subscription: x:y is made by subscribing.
    c.create_topic("x")
    assert c.subscribe("x", "y") == "x:y"
    refused(s, 50, inval, 'subscription "x:a:b"', "invalid name",
            "':' at position 2",
            subscribe=pb.Subscribe(topic="x", subscription="a:b"))
    refused(s, 51, inval, "TOPIC:SUBSCRIPTION would be 257 bytes",
            subscribe=pb.Subscribe(topic="x", subscription="s" * 255))
    assert {q.name for q in c.queue_list()} == {
        "orders", "orders.eu-west_1", "A-Z.0-9", "n" * 255, "x:y"}
    s.close()
    c.close()


def test_sentences_keep_the_reason(cluster):
    lead = cluster.wait_leader()
    s = raw_client(lead)
    msg = refused(s, 2, pb.ERROR_CODE_INVALID_ARGUMENT,
                  create_queue=pb.CreateQueue(name="b" * 256))
    assert msg == ('queue "%s\u2026": invalid name: the name is 256 bytes '
                   "long, over the limit of 255; names are 1 to 255 bytes "
                   "of letters, digits, '.', '_' and '-' (docs/queue.md)"
                   % ("b" * 40)), msg
    c = raftmq.Client(cluster.addresses())
    long = "c" * 250
    c.create_queue(long, ack_timeout_ms=1000)
    c.create_queue(long, ack_timeout_ms=1000)  # the same: fine
    with pytest.raises(raftmq.Error) as e:
        c.create_queue(long, ack_timeout_ms=2000, max_length=5)
    assert e.value.code == pb.ERROR_CODE_ALREADY_EXISTS
    assert e.value.message == (
        'queue "%s\u2026": already exists with different settings: '
        "ack_timeout_ms 1000 (requested 2000), max_length 0 (requested 5)"
        % ("c" * 40)), e.value.message
    c.create_topic("t", dedup_window_ms=1000)
    with pytest.raises(raftmq.Error) as e:
        c.create_topic("t")
    assert e.value.message == (
        'topic "t": already exists with different settings: '
        "dedup_window_ms 1000 (requested 120000)"), e.value.message
    c.subscribe("t", "s", max_deliveries=3)
    with pytest.raises(raftmq.Error) as e:
        c.subscribe("t", "s")
    assert e.value.message == (
        'subscription "t:s": already exists with different settings: '
        "max_deliveries 3 (requested 20)"), e.value.message
    s.close()
    c.close()


def test_dead_letter_queue_must_exist(cluster):
    c = raftmq.Client(cluster.addresses())
    missing = pb.ERROR_CODE_NOT_FOUND
    with pytest.raises(raftmq.Error) as e:
        c.create_queue("work", dead_letter="work-dlq")
    assert e.value.code == missing
    assert e.value.message == (
        'queue "work": its dead-letter queue "work-dlq" does not exist; '
        "create that queue first"), e.value.message
    assert c.queue_list() == []  # nothing was created
    c.create_queue("work")
    with pytest.raises(raftmq.Error) as e:
        c.configure_queue("work", dead_letter="work-dlq")
    assert e.value.code == missing
    assert c.queue_info("work").settings.dead_letter_queue == ""
    c.create_topic("t")
    with pytest.raises(raftmq.Error) as e:
        c.subscribe("t", "s", dead_letter="work-dlq")
    assert e.value.code == missing and "work-dlq" in e.value.message
    with pytest.raises(raftmq.Error) as e:
        c.configure_queue("work", dead_letter="work")
    assert e.value.code == pb.ERROR_CODE_INVALID_ARGUMENT
    assert "cannot be its own dead-letter queue" in e.value.message
    c.create_queue("work-dlq")
    c.configure_queue("work", dead_letter="work-dlq")
    assert c.queue_info("work").settings.dead_letter_queue == "work-dlq"
    c.configure_queue("work", dead_letter="")  # removing it is fine
    c.close()


def test_membership_refusals_say_which(cluster):
    lead = cluster.wait_leader()
    c = raftmq.Client(cluster.addresses())
    members = "(members: node 1 voter, node 2 voter, node 3 voter)"
    cases = [
        (lambda: c.cluster_transfer(lead.id),
         "node %d is the leader already" % lead.id),
        (lambda: c.cluster_transfer(9),
         "node 9 is not a member of the cluster " + members),
        (lambda: c.cluster_remove(9),
         "node 9 is not a member of the cluster " + members),
        (lambda: c.cluster_add(2, "127.0.0.1:1", "127.0.0.1:2"),
         "node 2 is already a member (voter at %s, not 127.0.0.1:1)"
         % cluster.node(2).raft_address),
        (lambda: c.cluster_add(4, cluster.node(3).raft_address,
                               "127.0.0.1:2"),
         "raft address %s is already node 3's"
         % cluster.node(3).raft_address),
    ]
    for call, want in cases:
        with pytest.raises(raftmq.Error) as e:
            call()
        assert e.value.code == pb.ERROR_CODE_INVALID_ARGUMENT, e.value
        assert e.value.message == want, e.value.message
    assert cluster.wait_leader().id == lead.id
    c.close()
