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
"""
import os
import socket
import ssl
import sys
import time

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


def metric(node, name):
    code, text = node.http("/metrics")
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    raise KeyError(name)


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
        n.id: metric(n, "raftmq_raft_elections_total") for n in c.nodes}


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
    assert metric(lead, "raftmq_connections_idle_closed_total") == 1
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
        assert metric(lead, "raftmq_connections_idle_closed_total") == 2
        assert quiet_cluster(c) == before
        for n in c.nodes:
            assert "is gone" not in n.log(), n.id
