"""What operators and new users see, on a real 3-node cluster:

test_status_from_every_node: with all three nodes up, /v1/status of every
node (leader and followers) reports no member as unreachable. A follower
cannot see the other follower: it says null ("unknown"), never false; it
sees itself and the leader (whose last contact is recent).
"""
import time

import pytest

import raftmq


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
