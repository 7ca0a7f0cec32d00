"""Error lines of the raftmq CLI that say what is wrong and what to do
(issue #12, items 7 and 8), against real clusters:

- a 256-byte name: the line quotes it shortened and keeps the whole reason;
- creating a queue that exists with other settings names those settings;
- a dead-letter queue that does not exist is refused, naming it;
- cluster transfer to the leader itself and to a node that is not a member
  say which;
- with 2 of 3 nodes down, `queue list` and `publish` say that a leader
  needs 2 of the 3 voters, which node answers and which do not (and why);
- with every node down, the line lists each address tried, why it failed,
  and that --cluster or RAFTMQ_CLUSTER sets the addresses.
"""
import signal
import time

from raftmq_cluster import Cluster
from test_cli import one_error_line


def test_long_name_keeps_the_reason(cli):
    r = cli("queue", "create", "b" * 256)
    assert r.rc == 1
    assert one_error_line(r) == (
        'raftmq: cannot create queue "%s\u2026": invalid name: the name is '
        "256 bytes long, over the limit of 255; names are 1 to 255 bytes of "
        "letters, digits, '.', '_' and '-' (docs/queue.md)" % ("b" * 40)), r
    r = cli("queue", "create", "a b")
    assert one_error_line(r) == (
        'raftmq: cannot create queue "a b": invalid name: a space at '
        "position 2 is not allowed; names are 1 to 255 bytes of letters, "
        "digits, '.', '_' and '-' (docs/queue.md)"), r


def test_colon_is_for_subscriptions(cli):
    r = cli("queue", "create", "x:y")
    assert "':' at position 2 is reserved for subscription queues" in \
        one_error_line(r), r
    cli.ok("topic", "create", "x")
    r = cli.ok("topic", "subscribe", "x", "y")
    assert r.out == 'subscribed "y" to topic "x": queue "x:y"\n'


def test_exists_names_the_settings(cli):
    cli.ok("queue", "create", "jobs", "--ack-timeout", "5000")
    r = cli("queue", "create", "jobs", "--max-length", "10")
    assert one_error_line(r) == (
        'raftmq: queue "jobs": already exists with different settings: '
        "ack_timeout_ms 5000 (requested 30000), max_length 0 (requested 10)"
    ), r


def test_dead_letter_must_exist(cli):
    r = cli("queue", "create", "mail", "--dead-letter", "mail-dlq")
    assert one_error_line(r) == (
        'raftmq: cannot create queue "mail": its dead-letter queue '
        '"mail-dlq" does not exist; create that queue first'), r
    r = cli("queue", "info", "mail")
    assert one_error_line(r) == 'raftmq: queue "mail" not found'
    cli.ok("queue", "create", "mail-dlq")
    cli.ok("queue", "create", "mail", "--dead-letter", "mail-dlq")


def test_transfer_says_which(cli, cluster):
    lead = cluster.wait_leader()
    r = cli("cluster", "transfer", lead.id)
    assert one_error_line(r) == (
        "raftmq: cannot transfer the leadership: node %d is the leader "
        "already" % lead.id), r
    r = cli("cluster", "transfer", 9)
    assert one_error_line(r) == (
        "raftmq: cannot transfer the leadership: node 9 is not a member of "
        "the cluster (members: node 1 voter, node 2 voter, node 3 voter)"), r


def test_no_majority_and_cluster_down(bare_cli):
    c = Cluster(3)
    try:
        c.start()
        lead = c.wait_leader()
        down = [n for n in c.nodes if n is not lead]
        for n in down:
            n.kill(signal.SIGKILL)
        # The leader steps down once it misses the majority.
        deadline = time.monotonic() + 10
        while lead.status()["state"] == "leader":
            assert time.monotonic() < deadline
            time.sleep(0.1)
        addrs = ["--cluster", c.addresses(), "--request-timeout", "2000"]
        not_answering = ", ".join("%s (connection refused)" %
                                  n.client_address for n in down)
        for args, action in ((["queue", "list"], "list queues"),
                             (["publish", "--queue", "q", "--body", "x"],
                              'publish to queue "q"')):
            r = bare_cli(*(addrs + args))
            assert r.rc == 1, r
            assert one_error_line(r) == (
                "raftmq: cannot %s: node %d knows no leader: electing one "
                "needs a majority of the voters (2 of 3) up and reachable; "
                "either an election is in progress or fewer voters answer; "
                "retry shortly; answering: node %d (%s); not answering: %s"
                % (action, lead.id, lead.id, lead.client_address,
                   not_answering)), r
        lead.kill(signal.SIGKILL)
        r = bare_cli(*(addrs + ["queue", "list"]))
        assert one_error_line(r) == (
            "raftmq: cannot reach the cluster: no node answers at %s; set "
            "the addresses with --cluster or RAFTMQ_CLUSTER" % ", ".join(
                "%s (connection refused)" % n.client_address
                for n in c.nodes)), r
    finally:
        c.cleanup()
