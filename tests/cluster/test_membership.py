"""Membership changes while traffic flows: add a 4th node, remove one.

Scenario: on a 3-node cluster a publisher streams confirmed publishes
(each with its own msg_id, reused by the client on retries). A 4th node is
started with no initial members (it joins instead of bootstrapping) and
added through the leader with cluster_add; the test waits until the
cluster status lists 4 voters and node 4 reports the same applied index
and state digest as the others (the publisher paused for that
comparison only). Then one of the original followers is removed with
cluster_remove while the publisher streams again; the remaining nodes list
3 voters and the removed node is stopped (SIGTERM, exit 0). The queue is
drained: every confirmed message id is consumed exactly once, and nothing
appears that was not published. Finally a client that knows only node 4
is served by it (redirected to the leader when node 4 follows): node 4
must know the leader's client address although it joined without the
initial member list.
"""
import threading
import time

import pytest

import raftmq
from raftmq_cluster import Node


def voters(client):
    st = client.cluster_status()
    return sorted(n.id for n in st.nodes
                  if n.role == raftmq.pb.NODE_ROLE_VOTER), st


def wait_for(pred, timeout, what):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        ok, last = pred()
        if ok:
            return last
        time.sleep(0.05)
    raise AssertionError("timed out after %.1f s waiting for %s: %s"
                         % (timeout, what, last))


def add_node(cluster, node_id):
    """Starts a node that joins (no --members) and registers it in the
    harness so that it is cleaned up and checked for crashes."""
    n = Node(cluster, node_id)
    cluster.nodes.append(n)
    n.start(members="")
    return n


class Publisher(threading.Thread):
    """Publishes "p-<i>" until stopped; records what was attempted and
    what was confirmed. pause()/resume() hold it between publishes."""

    def __init__(self, cluster, queue):
        super().__init__(daemon=True)
        self.client = raftmq.Client(cluster.addresses(), timeout=20)
        self.queue = queue
        self.attempted = set()
        self.confirmed = set()
        self.failed = []
        self.stopping = threading.Event()
        self.running = threading.Event()
        self.running.set()
        self.idle = threading.Event()

    def run(self):
        i = 0
        while not self.stopping.is_set():
            if not self.running.is_set():
                self.idle.set()
                self.running.wait(0.05)
                continue
            self.idle.clear()
            mid = b"p-%d" % i
            self.attempted.add(mid)
            try:
                self.client.publish(self.queue, b"body-" + mid, msg_id=mid)
                self.confirmed.add(mid)
            except (raftmq.Error, raftmq.ConnectionLost) as e:
                self.failed.append((mid, e))
            i += 1
        self.client.close()

    def pause(self):
        self.running.clear()
        assert self.idle.wait(25), "publisher did not pause"

    def resume(self):
        self.running.set()

    def stop(self):
        self.stopping.set()
        self.running.set()
        self.join(timeout=30)
        assert not self.is_alive(), "publisher stuck"


def test_add_and_remove_while_publishing(cluster):
    lead = cluster.wait_leader()
    admin = raftmq.Client(lead.client_address)
    admin.create_queue("m")
    pub = Publisher(cluster, "m")
    pub.start()
    time.sleep(0.5)

    # -- add node 4 while the publisher streams
    n4 = add_node(cluster, 4)
    t0 = time.monotonic()
    admin.cluster_add(4, n4.raft_address, n4.client_address)
    def four_voters():
        ids, st = voters(admin)
        return ids == [1, 2, 3, 4], st
    wait_for(four_voters, 20, "4 voters")
    print("node 4 is a voter after %.2f s" % (time.monotonic() - t0))
    n_added = len(pub.confirmed)
    time.sleep(0.5)
    pub.pause()
    cluster.wait_converged(timeout=20)
    st4 = n4.status()
    assert st4["leader_id"] == cluster.leader().id
    assert sorted(x["id"] for x in st4["nodes"]) == [1, 2, 3, 4]
    assert n4.http("/healthz/ready")[0] == 200
    assert raftmq.Client(n4.client_address).cluster_status().node_id == 4
    pub.resume()
    time.sleep(0.5)

    # -- remove one of the original followers while traffic flows
    lead = cluster.wait_leader()
    gone = next(n for n in cluster.initial if n.id != lead.id)
    admin = raftmq.Client(lead.client_address)
    admin.cluster_remove(gone.id)
    rest = sorted(n.id for n in cluster.nodes if n.id != gone.id)
    def removed():
        ids, st = voters(admin)
        return ids == rest and len(st.nodes) == 3, st
    wait_for(removed, 20, "node %d removed" % gone.id)
    time.sleep(0.5)
    rc = gone.stop(timeout=20)
    assert rc == 0, "removed node %d exited with %r" % (gone.id, rc)
    time.sleep(0.5)
    pub.stop()
    assert len(pub.confirmed) > n_added, "no publish confirmed after the add"
    assert cluster.leader() is not None

    remaining = [n for n in cluster.nodes if n.id != gone.id]
    cluster.wait_converged(timeout=20, nodes=remaining)

    for n in remaining:
        st = n.status()
        assert sorted(x["id"] for x in st["nodes"]) == rest, (n.id, st)

    # -- drain: every confirmed id exactly once
    con = raftmq.Client(cluster.addresses(
        [n for n in cluster.initial if n.id != gone.id]))
    info = con.queue_info("m")
    assert info.unacked == 0 and info.ready == info.published
    cid = con.consume("m", prefetch=500)
    seen = []
    while True:
        d = con.next_delivery(timeout=5 if len(seen) < info.ready else 0.5)
        if d is None:
            break
        assert d.body == b"body-" + d.msg_id, d
        seen.append(d.msg_id)
        assert con.ack(cid, [d.tag]) == (1, 0)
    assert len(seen) == info.ready
    dupes = len(seen) - len(set(seen))
    assert dupes == 0, "%d duplicated deliveries" % dupes
    lost = pub.confirmed - set(seen)
    assert not lost, "confirmed but not consumed: %s" % sorted(lost)[:20]
    unexpected = set(seen) - pub.attempted
    assert not unexpected, sorted(unexpected)[:20]
    # anything beyond the confirmed ones is a publish whose outcome the
    # client could not learn (it raised)
    extra = set(seen) - pub.confirmed
    assert extra <= {m for m, _ in pub.failed}, sorted(extra)[:20]
    print("published %d confirmed, %d failed, %d consumed" %
          (len(pub.confirmed), len(pub.failed), len(seen)))
    after = con.queue_info("m")
    assert (after.ready, after.unacked) == (0, 0)
    cluster.wait_converged(timeout=20, nodes=remaining)

    # -- node 4 serves clients like any member: a client that knows only
    # node 4 is redirected to the leader (node 4 must know its client
    # address) and can read and publish
    st4 = n4.status()
    lead = cluster.wait_leader()
    if lead.id != 4:
        assert st4["leader_client_address"] == lead.client_address, st4
    con.close()  # its consumer would take the next message
    c4 = raftmq.Client(n4.client_address, timeout=5)
    wait_for(lambda: (c4.queue_info("m").consumers == 0, None), 10,
             "the closed consumer to go")
    assert c4.queue_info("m").ready == 0
    seq, dup = c4.publish("m", b"via node 4")
    assert not dup
    assert c4.queue_info("m").ready == 1


def test_python_client_moves_off_a_node_without_leader(cluster):
    """A node removed from the cluster keeps running with its old view and,
    once it stops hearing from the leader, knows no leader: it answers
    NOT_LEADER or UNAVAILABLE without an address. A client that lists it
    first must move on to the next address (found by jepsen/: the Python
    client retried on the same node until its deadline)."""
    lead = cluster.wait_leader()
    gone = next(n for n in cluster.nodes if n.id != lead.id)
    rest = [n for n in cluster.nodes if n.id != gone.id]
    admin = raftmq.Client(lead.client_address, timeout=15)
    admin.cluster_remove(gone.id)
    wait_for(lambda: (voters(admin)[0] == sorted(n.id for n in rest), None),
             20, "node %d removed" % gone.id)
    wait_for(lambda: (gone.status().get("leader_id", 0) == 0,
                      gone.status()), 15,
             "the removed node to forget the leader")
    c = raftmq.Client([gone.client_address] + [n.client_address
                                               for n in rest], timeout=10)
    t0 = time.monotonic()
    c.create_queue("moved")
    seq, dup = c.publish("moved", b"x", msg_id="m1")
    assert not dup
    assert c.node_id != gone.id
    print("served by node %d after %.2f s" % (c.node_id,
                                              time.monotonic() - t0))
    assert gone.stop() == 0


def test_a_retried_add_finishes_the_job(cluster):
    """An add is two configuration changes: the node joins as a spare,
    then libraft catches it up and commits its role. A leader change in
    between leaves a spare behind (seen in the membership nemesis of
    jepsen/); retrying the same add must promote it, not refuse it, and a
    retry of an add that completed succeeds and changes nothing. The same
    id at another address is still refused."""
    lead = cluster.wait_leader()
    admin = raftmq.Client(cluster.addresses(), timeout=20)
    admin.create_queue("r")
    admin.publish("r", b"before")
    n4 = add_node(cluster, 4)
    # The state a cut-short add leaves: a spare.
    admin.cluster_add(4, n4.raft_address, n4.client_address,
                      role=raftmq.pb.NODE_ROLE_SPARE)
    st = admin.cluster_status()
    assert [n.role for n in st.nodes if n.id == 4] == \
        [raftmq.pb.NODE_ROLE_SPARE]
    # The retry of the voter add promotes it.
    admin.cluster_add(4, n4.raft_address, n4.client_address)
    ids, st = voters(admin)
    assert ids == [1, 2, 3, 4], st
    # Once more: nothing to do, no error.
    admin.cluster_add(4, n4.raft_address, n4.client_address)
    ids, st = voters(admin)
    assert ids == [1, 2, 3, 4] and len(st.nodes) == 4, st
    cluster.wait_converged(timeout=20)
    assert raftmq.Client(n4.client_address).queue_info("r").ready == 1
    with pytest.raises(raftmq.Error) as e:
        admin.cluster_add(4, "127.0.0.1:1", n4.client_address)
    assert e.value.code == raftmq.pb.ERROR_CODE_INVALID_ARGUMENT
    assert e.value.message == \
        "node 4 is already a member (voter at %s, not 127.0.0.1:1)" \
        % n4.raft_address
    assert cluster.wait_leader().id == lead.id
    admin.close()
