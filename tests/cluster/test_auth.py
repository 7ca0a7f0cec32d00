"""Authentication and TLS with the Python client (docs/operations.md,
"Authentication and TLS").

Scenario: a 3-node cluster runs with auth = on and TLS on the client port
(certificates made at test time by tests/lib/raftmq_secure.py). A plain
client is refused with a sentence; a TLS client that does not trust the
node's CA, or dials a name the certificate does not carry, fails at once;
no token and a wrong token are refused with UNAUTHENTICATED and the
connection closes; a request before Hello is refused with UNAUTHENTICATED.
Users then get exactly their prefixes: alice publishes, consumes and
configures orders.*, is refused payments.* and the cluster; bob publishes
logs.* only and sees only what he has a permission on; admin may do all and
read the cluster status. Through a follower the TLS client follows the
redirect to the leader. A second, single-node cluster with tls_ca requires
a client certificate; a third has auth without TLS (tokens on a plain
port)."""
import os
import ssl
import sys
import time

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "lib"))

import raftmq  # noqa: E402
from raftmq import pb  # noqa: E402
from raftmq_cluster import serve  # noqa: E402
from raftmq_raw import raw_tls, recv, send  # noqa: E402
from raftmq_secure import TOKENS, secure_cluster  # noqa: E402

DENIED = pb.ERROR_CODE_PERMISSION_DENIED
UNAUTH = pb.ERROR_CODE_UNAUTHENTICATED


@pytest.fixture(scope="module")
def sc():
    yield from serve(secure_cluster(3))


def client(sc, user, node=None, **kw):
    addr = node.client_address if node else sc.addresses()
    return raftmq.Client(addr, timeout=10, token=TOKENS[user],
                         tls_ca=sc.files["ca"], **kw)


def test_plain_client_refused_with_a_sentence(sc):
    t0 = time.monotonic()
    with pytest.raises(raftmq.Error) as e:
        raftmq.Client(sc.addresses(), timeout=10, token=TOKENS["alice"])
    assert e.value.code == UNAUTH
    assert "requires TLS" in e.value.message
    assert time.monotonic() - t0 < 5  # refused, not retried to the timeout


def test_untrusted_certificate_fails_at_once(sc):
    t0 = time.monotonic()
    with pytest.raises(raftmq.TLSError) as e:
        raftmq.Client(sc.addresses(), timeout=10, token=TOKENS["alice"],
                      tls_ca=sc.files["other_ca"])
    assert "certificate" in str(e.value)
    with pytest.raises(raftmq.TLSError):
        raftmq.Client(sc.addresses(), timeout=10, token=TOKENS["alice"],
                      tls_ca=sc.files["ca"], server_hostname="elsewhere")
    assert time.monotonic() - t0 < 5


def test_missing_and_wrong_tokens(sc):
    for token, words in (("", "no auth token"),
                         ("not-a-token", "refused the auth token")):
        with pytest.raises(raftmq.Error) as e:
            raftmq.Client(sc.addresses(), timeout=10, token=token,
                          tls_ca=sc.files["ca"])
        assert e.value.code == UNAUTH, e.value
        assert words in e.value.message


def test_request_before_hello_and_bad_hello_closes(sc):
    node = sc.wait_leader()
    s = raw_tls(sc, node)
    send(s, 7, queue_list=pb.QueueList())
    env = recv(s)
    assert env.correlation_id == 7 and env.error.code == UNAUTH
    assert "send Hello" in env.error.message
    # still open: a good Hello then works
    send(s, 8, hello=pb.Hello(protocol_version=1,
                              auth_token=TOKENS["bob"]))
    assert recv(s).WhichOneof("body") == "hello_result"
    send(s, 9, queue_list=pb.QueueList())
    assert recv(s).WhichOneof("body") == "queue_list_result"
    s.close()
    # a wrong token: UNAUTHENTICATED, then the node closes the connection
    s = raw_tls(sc, node)
    send(s, 1, hello=pb.Hello(protocol_version=1, auth_token="wrong"))
    assert recv(s).error.code == UNAUTH
    assert recv(s) is None
    s.close()


def test_permissions_by_prefix(sc):
    alice = client(sc, "alice")
    alice.create_queue("orders.eu")
    seq, _ = alice.publish("orders.eu", b"o1")
    cid = alice.consume("orders.eu")
    d = alice.next_delivery(timeout=5)
    assert d is not None and d.body == b"o1"
    alice.ack(cid, [d.tag])

    for call in (lambda: alice.create_queue("payments"),
                 lambda: alice.publish("payments", b"x"),
                 lambda: alice.consume("logs.app"),
                 lambda: alice.fetch("logs.app"),
                 lambda: alice.delete_queue("logs.app"),
                 lambda: alice.create_queue("orders.x",
                                            dead_letter="payments.dlq"),
                 lambda: alice.cluster_status(),
                 lambda: alice.cluster_transfer(0)):
        with pytest.raises(raftmq.Error) as e:
            call()
        assert e.value.code == DENIED, e.value
        assert "alice" in e.value.message

    admin = client(sc, "admin")
    admin.create_queue("logs.app")
    admin.create_queue("payments")
    admin.create_topic("events.orders")
    st = admin.cluster_status()
    assert st.leader_id != 0 and len(st.nodes) == 3

    bob = client(sc, "bob")
    bob.publish("logs.app", b"l1")
    with pytest.raises(raftmq.Error) as e:
        bob.publish("orders.eu", b"x")
    assert e.value.code == DENIED
    assert "its publish prefixes are logs." in e.value.message
    with pytest.raises(raftmq.Error) as e:
        bob.create_queue("logs.other")
    assert e.value.code == DENIED and "no configure permission" in \
        e.value.message
    # lists show only names with some permission
    assert [q.name for q in bob.queue_list()] == ["logs.app"]
    assert [t.name for t in bob.topic_list()] == ["events.orders"]
    assert {q.name for q in admin.queue_list()} >= {
        "logs.app", "orders.eu", "payments"}
    with pytest.raises(raftmq.Error) as e:
        bob.queue_info("payments")
    assert e.value.code == DENIED
    # subscribing needs consume on the topic and configure on the queue
    with pytest.raises(raftmq.Error) as e:
        bob.subscribe("events.orders", "audit")
    assert e.value.code == DENIED and "configure" in e.value.message
    assert admin.subscribe("events.orders", "audit") == "events.orders:audit"
    for c in (alice, bob, admin):
        c.close()


def test_tls_redirect_from_a_follower(sc):
    lead = sc.wait_leader()
    f = next(n for n in sc.nodes if n.id != lead.id)
    c = client(sc, "alice", node=f)
    c.create_queue("orders.redirect")
    assert c.publish("orders.redirect", b"r")[0] > 0
    c.close()


def test_client_certificate_required():
    c = secure_cluster(1, client_certs=True)
    try:
        c.start()
        files = c.files
        with pytest.raises((raftmq.ConnectionLost, raftmq.Error, OSError)):
            raftmq.Client(c.addresses(), timeout=3, token=TOKENS["alice"],
                          tls_ca=files["ca"])
        ctx = ssl.create_default_context(cafile=files["ca"])
        ctx.load_cert_chain(files["client_cert"], files["client_key"])
        cl = raftmq.Client(c.addresses(), timeout=10,
                           token=TOKENS["alice"], ssl_context=ctx)
        cl.create_queue("orders.cert")
        assert cl.publish("orders.cert", b"c")[0] > 0
        cl.close()
        assert not c.crashes()
    except BaseException:
        sys.stderr.write(c.logs())
        raise
    finally:
        c.cleanup()


def test_auth_without_tls():
    c = secure_cluster(1, tls=False)
    try:
        c.start()
        with pytest.raises(raftmq.Error) as e:
            raftmq.Client(c.addresses(), timeout=5)
        assert e.value.code == UNAUTH
        cl = raftmq.Client(c.addresses(), timeout=10, token=TOKENS["bob"])
        with pytest.raises(raftmq.Error) as e:
            cl.create_queue("logs.plain")
        assert e.value.code == DENIED
        cl.close()
        adm = raftmq.Client(c.addresses(), timeout=10,
                            token=TOKENS["admin"])
        adm.create_queue("logs.plain")
        adm.close()
        cl = raftmq.Client(c.addresses(), timeout=10, token=TOKENS["bob"])
        assert cl.publish("logs.plain", b"p")[0] > 0
        cl.close()
        assert not c.crashes()
    except BaseException:
        sys.stderr.write(c.logs())
        raise
    finally:
        c.cleanup()
