"""A long partition, healed, then the leader killed (issue 13).

After a partition held ~20 s heals, the connections between the nodes must
work again within about an election timeout. Before raftmq bounded the life
of a stuck Raft connection (consensus/cons_transport.c: TCP_USER_TIMEOUT,
keepalive, connect deadline), a connection that had sent into the partition
stayed in the kernel's retransmission backoff for up to ~25 s after the
heal, and so did a connection attempt whose SYNs were dropped: when the
leader was then killed, the two healthy nodes could not exchange votes and
no leader was elected for 10-18 s.

The scenario (3 nodes, default timeouts: election 1000 ms, heartbeat 100
ms): leader L cut off both ways from the two others for `hold` seconds (they
elect L2), healed, GAP_S later L2 is killed with SIGKILL (its followers
notice at once: node/node_watch.c) or paused with SIGSTOP (they wait out an
election timeout); L and the third node must elect a leader within BOUND_S
(2 election timeouts + 1 s).

Why a 25 s case too: TCP_USER_TIMEOUT and keepalive on connected streams
alone are not enough. The connection that died in the partition is
replaced by a connection attempt whose SYNs are dropped, retried by the
kernel with backoff (1 s apart four times, then 2, 4, 8, 16, 32 s on this
kernel's defaults), and raft_uv_tcp waits for it. Whether a SYN happens to
go out just after the heal depends on the hold: measured without the
connect deadline, 20 s recovered in 0.1-0.6 s, 15 s took 5.0 s, 25 s 10.8
s, 30 s 6.2 s and 40 s 29 s.

Each node runs in its own network namespace on a bridge (tests/lib/netns.py,
the layout of jepsen/), under other names and another subnet than jepsen/'s
so that the two can run side by side: prefix "rmqp-", 10.78.0.0/24. A
partition is iptables DROP rules in the receiving node's namespace, keyed by
the sender's address; nothing outside those namespaces is filtered. Needs
root (ip netns, iptables): skipped otherwise.
"""
import fcntl
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
import urllib.request

import pytest

from netns import Net
from raftmq_cluster import raftmqd_path

PREFIX = "rmqp-"
SUBNET = "10.78.0"
GAP_S = 2.0
BOUND_S = 3.0
LOCK = "/run/lock/raftmq-partition-test.lock"

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or shutil.which("ip") is None or
    shutil.which("iptables") is None,
    reason="needs root, ip and iptables (network namespaces)")


NET = Net(PREFIX, SUBNET, 3)


class NsNode:
    def __init__(self, i, tmp):
        self.id = i
        self.data_dir = os.path.join(tmp, "node%d" % i)
        self.log_path = self.data_dir + ".log"
        self.proc = None

    def member(self):
        return "%d@%s:7101@%s:7001" % (self.id, NET.address(self.id),
                                       NET.address(self.id))

    def start(self, members):
        ip = NET.address(self.id)
        args = NET.exec_args(self.id) + [
                raftmqd_path(), "--id", str(self.id),
                "--data-dir", self.data_dir,
                "--raft-address", "%s:7101" % ip,
                "--client-address", "%s:7001" % ip,
                "--http-address", "%s:7201" % ip,
                "--members", members, "--log-level", "debug"]
        with open(self.log_path, "ab") as log:
            # `ip netns exec` execs raftmqd: the pid is raftmqd's.
            self.proc = subprocess.Popen(args, stdout=log, stderr=log,
                                         stdin=subprocess.DEVNULL)

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def status(self):
        url = "http://%s:7201/v1/status" % NET.address(self.id)
        with urllib.request.urlopen(url, timeout=0.5) as r:
            return json.loads(r.read().decode())

    def log(self):
        try:
            with open(self.log_path, "rb") as f:
                return f.read().decode(errors="replace")[-30000:]
        except OSError:
            return ""


def leader_among(nodes):
    """The id of a node among `nodes` that says it leads, or None."""
    for nd in nodes:
        if not nd.alive():
            continue
        try:
            if nd.status()["state"] == "leader":
                return nd.id
        except (OSError, ValueError, KeyError):
            pass
    return None


def wait_leader(nodes, timeout):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        lead = leader_among(nodes)
        if lead is not None:
            return lead
        time.sleep(0.02)
    return None


@pytest.fixture
def netns_cluster(request):
    lock = open(LOCK, "w")
    fcntl.flock(lock, fcntl.LOCK_EX)  # one run of this test at a time
    tmp = tempfile.mkdtemp(prefix="raftmq-partition-")
    nodes = [NsNode(i, tmp) for i in (1, 2, 3)]
    NET.clear()
    try:
        NET.up()
        members = ",".join(nd.member() for nd in nodes)
        for nd in nodes:
            nd.start(members)
        yield nodes
    finally:
        rep = getattr(request.node, "rep_call", None)
        crashed = [nd.id for nd in nodes if nd.proc is not None and
                   nd.proc.poll() not in (None, -signal.SIGKILL)]
        if (rep is not None and rep.failed) or crashed:
            for nd in nodes:
                print("==== node %d ====\n%s" % (nd.id, nd.log()))
        for nd in nodes:
            if nd.alive():
                nd.proc.kill()  # SIGKILL ends a stopped process too
                nd.proc.wait(timeout=30)
        NET.clear()
        shutil.rmtree(tmp, ignore_errors=True)
        fcntl.flock(lock, fcntl.LOCK_UN)
        lock.close()
        assert not crashed, "nodes crashed on their own: %s" % crashed


# The three differ in timing only (what the leader does after the heal,
# how long the partition was held): the sanitizer build runs the first,
# which covers the code for memory errors, and CI stays within its time.
TIMING_ONLY = pytest.mark.skipif(
    os.environ.get("RAFTMQ_SANITIZE") == "1",
    reason="a timing variant: the sanitizer build runs the first only")


@pytest.mark.parametrize("how,hold", [
    ("kill", 20.0),
    pytest.param("pause", 20.0, marks=TIMING_ONLY),
    pytest.param("kill", 25.0, marks=TIMING_ONLY)])
def test_leader_lost_after_long_partition_heals(netns_cluster, how, hold):
    nodes = netns_cluster
    by_id = {nd.id: nd for nd in nodes}
    first = wait_leader(nodes, 20)
    assert first is not None, "no first leader"
    others = [nd for nd in nodes if nd.id != first]

    # The leader is cut off from both others, both ways, for `hold` s.
    t0 = time.monotonic()
    for nd in others:
        NET.cut(first, nd.id)
    second = wait_leader(others, 15)
    assert second is not None, "the majority side elected no leader"
    time.sleep(max(0.0, hold - (time.monotonic() - t0)))
    NET.heal()
    time.sleep(GAP_S)

    # The majority's leader is lost: the old leader and the third node must
    # elect one of them.
    survivors = [nd for nd in nodes if nd.id != second]
    lost_at = time.monotonic()
    if how == "kill":
        by_id[second].proc.send_signal(signal.SIGKILL)
        by_id[second].proc.wait(timeout=10)
    else:
        by_id[second].proc.send_signal(signal.SIGSTOP)
    third = wait_leader(survivors, 30)
    took = time.monotonic() - lost_at
    print("partition %.1f s, healed, %.1f s later leader %d lost (%s): "
          "new leader %s after %.2f s" % (hold, GAP_S, second, how, third,
                                          took))
    assert third is not None, "no leader 30 s after the %s" % how
    assert took <= BOUND_S, (
        "new leader %.2f s after the %s (bound %.1f s): connections "
        "between the survivors were still stuck" % (took, how, BOUND_S))
