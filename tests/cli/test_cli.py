"""The raftmq CLI (DESIGN.md section 6) against a real 3-node cluster:
every command with its exit code and output, the error lines of a missing
queue, a full queue and an unreachable cluster, a 2000-message round trip
and JSON output."""
import base64
import json
import time

import pytest

COMMANDS = [
    [], ["queue"], ["queue", "create"], ["queue", "configure"],
    ["queue", "delete"], ["queue", "purge"], ["queue", "info"],
    ["queue", "list"], ["topic"], ["topic", "create"], ["topic", "delete"],
    ["topic", "subscribe"], ["topic", "unsubscribe"], ["topic", "list"],
    ["publish"], ["consume"], ["cluster"], ["cluster", "status"],
    ["cluster", "add"], ["cluster", "remove"], ["cluster", "transfer"],
    ["stats"],
]


def one_error_line(r):
    """The failure contract: non-zero, one "raftmq: ..." line on stderr."""
    assert r.rc != 0, r
    lines = r.err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("raftmq: "), r
    return lines[0]


def jsonl(r):
    return [json.loads(l) for l in r.lines()]


@pytest.mark.parametrize("path", COMMANDS, ids=lambda p: " ".join(p) or "-")
def test_help_everywhere(bare_cli, path):
    r = bare_cli(*path, "--help")
    assert r.rc == 0 and r.err == "", r
    assert r.out.startswith("Usage: raftmq"), r
    r = bare_cli(*path, "-h")
    assert r.rc == 0 and r.out.startswith("Usage: raftmq"), r


def test_usage_errors(bare_cli):
    for args in (["frobnicate"], ["queue", "frob"], ["queue", "create"],
                 ["publish", "--body", "x"],
                 ["publish", "--queue", "q", "--body", "x", "--count", "3"],
                 ["publish", "--queue", "q", "--count", "x"],
                 ["publish", "--queue", "q", "--count", "3", "--id", "a"],
                 ["consume", "q", "--no-ack", "--nack"],
                 ["consume", "q", "--bogus"], ["consume"],
                 ["queue", "configure", "q"],
                 ["queue", "create", "q", "--overflow", "sideways"],
                 ["cluster", "remove", "x"], []):
        r = bare_cli(*args)
        assert r.rc == 2, (args, r)
        line = one_error_line(r)
        assert "--help" in line, (args, line)


def test_unreachable_cluster(bare_cli):
    r = bare_cli("--cluster", "127.0.0.1:1", "queue", "list")
    line = one_error_line(r)
    assert r.rc == 1
    assert line == ("raftmq: cannot reach the cluster: no node answers at "
                    "127.0.0.1:1 (connection refused); set the addresses "
                    "with --cluster or RAFTMQ_CLUSTER"), line
    assert r.elapsed < 8, r.elapsed
    # the same for a command that publishes, and with --cluster after it
    r = bare_cli("publish", "--queue", "q", "--body", "x",
                 "--cluster", "127.0.0.1:1")
    assert one_error_line(r).startswith(
        "raftmq: cannot reach the cluster: no node answers at 127.0.0.1:1 ")


def test_default_cluster_from_environment(cli, bare_cli, cluster):
    # RAFTMQ_CLUSTER is the default for --cluster
    r = bare_cli("queue", "list",
                 env={"RAFTMQ_CLUSTER": cluster.addresses()})
    assert r.rc == 0 and r.out.startswith("NAME"), r
    # without it, the local cluster at RAFTMQ_BASE_PORT + 1..3
    r = bare_cli("queue", "list", env={"RAFTMQ_BASE_PORT": "1"})
    assert one_error_line(r).startswith(
        "raftmq: cannot reach the cluster: no node answers at "
        "127.0.0.1:2 (connection refused), 127.0.0.1:3 (connection "
        "refused), 127.0.0.1:4 (connection refused);"), r


def test_queue_lifecycle(cli):
    cli.ok("queue", "create", "orders-dlq")  # a dead-letter queue must exist
    r = cli.ok("queue", "create", "orders", "--ack-timeout", "5000",
               "--max-deliveries", "3", "--dead-letter", "orders-dlq",
               "--ttl", "60000", "--max-length", "100", "--max-bytes",
               "100000", "--overflow", "drop-head", "--dedup-window", "9000")
    assert r.out == 'created queue "orders"\n'
    # idempotent with the same settings, refused with others
    cli.ok("queue", "create", "orders", "--ack-timeout", "5000",
           "--max-deliveries", "3", "--dead-letter", "orders-dlq",
           "--ttl", "60000", "--max-length", "100", "--max-bytes", "100000",
           "--overflow", "drop-head", "--dedup-window", "9000")
    r = cli("queue", "create", "orders", "--ack-timeout", "5000",
            "--max-deliveries", "3", "--dead-letter", "orders-dlq",
            "--ttl", "60000", "--max-length", "100", "--max-bytes", "100000",
            "--dedup-window", "9000")
    assert one_error_line(r) == (
        'raftmq: queue "orders": already exists with different settings: '
        'overflow drop-head (requested reject-publish)'), r
    info = json.loads(cli.ok("queue", "info", "orders", "--json").out)
    assert info["name"] == "orders" and info["topic"] == ""
    assert info["settings"] == {
        "ack_timeout_ms": 5000, "max_deliveries": 3,
        "dead_letter_queue": "orders-dlq", "ttl_ms": 60000,
        "max_length": 100, "max_bytes": 100000, "overflow": "drop-head",
        "dedup_window_ms": 9000}
    r = cli.ok("queue", "configure", "orders", "--max-length", "0",
               "--overflow", "reject-publish")
    assert r.out == 'configured queue "orders"\n'
    info = json.loads(cli.ok("queue", "info", "orders", "--json").out)
    assert info["settings"]["max_length"] == 0
    assert info["settings"]["overflow"] == "reject-publish"
    assert info["settings"]["ack_timeout_ms"] == 5000  # unchanged
    for i in range(3):
        cli.ok("publish", "--queue", "orders", "--body", "m%d" % i)
    table = cli.ok("queue", "info", "orders").out
    rows = dict(l.split(None, 1) for l in table.splitlines())
    assert rows["name"] == "orders" and rows["ready"] == "3"
    assert rows["published"] == "3" and rows["overflow"] == "reject-publish"
    assert rows["ack-timeout"] == "5000 ms"
    lst = cli.ok("queue", "list").out.splitlines()
    assert lst[0].split()[:3] == ["NAME", "READY", "UNACKED"]
    row = next(l.split() for l in lst if l.split()[0] == "orders")
    assert row[1] == "3"
    lj = json.loads(cli.ok("queue", "list", "--json").out)
    assert [q["ready"] for q in lj if q["name"] == "orders"] == [3]
    r = cli.ok("queue", "purge", "orders")
    assert r.out == 'purged 3 messages from queue "orders"\n'
    assert json.loads(cli.ok("queue", "info", "orders",
                             "--json").out)["ready"] == 0
    r = cli.ok("queue", "delete", "orders")
    assert r.out == 'deleted queue "orders"\n'
    lj = json.loads(cli.ok("queue", "list", "--json").out)
    assert "orders" not in [q["name"] for q in lj]


def test_missing_queue(cli):
    want = 'raftmq: queue "nope" not found'
    for args in (["queue", "info", "nope"], ["queue", "delete", "nope"],
                 ["queue", "purge", "nope"],
                 ["queue", "configure", "nope", "--ttl", "1"],
                 ["publish", "--queue", "nope", "--body", "x"],
                 ["consume", "nope", "--timeout", "200"]):
        r = cli(*args)
        assert r.rc == 1, (args, r)
        assert one_error_line(r) == want, (args, r)
    r = cli("publish", "--queue", "nope", "--count", "10")
    assert r.rc == 1 and r.out == ""
    assert one_error_line(r) == ('raftmq: 10 of 10 messages not confirmed: '
                                 'queue "nope" not found'), r


def test_full_queue(cli):
    cli.ok("queue", "create", "small", "--max-length", "2",
           "--overflow", "reject-publish")
    cli.ok("publish", "--queue", "small", "--body", "1")
    cli.ok("publish", "--queue", "small", "--body", "2")
    r = cli("publish", "--queue", "small", "--body", "3")
    assert r.rc == 1 and r.out == ""
    assert one_error_line(r).startswith('raftmq: queue "small" is full'), r
    r = cli("publish", "--queue", "small", "--count", "5")
    assert r.rc == 1 and r.out == ""
    assert one_error_line(r).startswith(
        'raftmq: 5 of 5 messages not confirmed: queue "small" is full'), r


def test_publish_single(cli, tmp_path):
    cli.ok("queue", "create", "single")
    r = cli.ok("publish", "--queue", "single", "--body", "hello")
    (c,) = jsonl(r)
    assert set(c) == {"id", "seq", "duplicate"} and not c["duplicate"]
    assert c["id"]  # a fresh id is printed
    # duplicate ids: the second is confirmed with the original's seq
    a = jsonl(cli.ok("publish", "--queue", "single", "--id", "dup-1",
                     "--body", "x"))[0]
    b = jsonl(cli.ok("publish", "--queue", "single", "--id", "dup-1",
                     "--body", "x"))[0]
    assert a == {"id": "dup-1", "seq": a["seq"], "duplicate": False}
    assert b == {"id": "dup-1", "seq": a["seq"], "duplicate": True}
    # --file: a binary body comes back as body_base64; '-' is stdin
    blob = bytes(range(256))
    (tmp_path / "blob").write_bytes(blob)
    cli.ok("publish", "--queue", "single", "--file", tmp_path / "blob",
           "--id", "blob")
    cli.ok("publish", "--queue", "single", "--file", "-", "--id", "stdin",
           input="from stdin")
    r = cli("publish", "--queue", "single", "--file", tmp_path / "none")
    assert one_error_line(r).startswith("raftmq: cannot read "), r
    got = {d["id"]: d for d in jsonl(cli.ok("consume", "single",
                                            "--timeout", "300"))}
    assert got[c["id"]]["body"] == "hello"
    assert base64.b64decode(got["blob"]["body_base64"]) == blob
    assert "body" not in got["blob"]
    assert got["stdin"]["body"] == "from stdin"
    assert set(got[c["id"]]) == {"id", "seq", "body", "delivery_count",
                                 "redelivered"}
    assert got[c["id"]]["seq"] == c["seq"]


def test_json_escaping(cli):
    cli.ok("queue", "create", "esc")
    body = 'quote " back \\ nl \n tab \t bell \x07 nul \x00 é 日本 🎉'
    ident = 'id "with" \\ and \n'
    r = cli.ok("publish", "--queue", "esc", "--id", ident, "--body",
               body.replace("\x00", ""))
    assert jsonl(r)[0]["id"] == ident
    (d,) = jsonl(cli.ok("consume", "esc", "--timeout", "300"))
    assert d["id"] == ident and d["body"] == body.replace("\x00", "")


def test_publish_count_round_trip(cli):
    cli.ok("queue", "create", "bulk")
    n = 2000
    r = cli.ok("publish", "--queue", "bulk", "--count", n, "--size", 100,
               "--id-prefix", "rt", "--inflight", 64)
    confirms = jsonl(r)
    assert len(confirms) == n
    assert {c["id"] for c in confirms} == {"rt-%d" % i for i in range(n)}
    assert len({c["seq"] for c in confirms}) == n
    assert not any(c["duplicate"] for c in confirms)
    r = cli.ok("consume", "bulk", "--max", n, "--prefetch", 300)
    got = jsonl(r)
    ids = [d["id"] for d in got]
    assert len(ids) == n and set(ids) == {"rt-%d" % i for i in range(n)}
    for d in got:
        assert d["body"].startswith(d["id"]) and len(d["body"]) == 100
        assert d["delivery_count"] == 1 and not d["redelivered"]
    info = json.loads(cli.ok("queue", "info", "bulk", "--json").out)
    assert (info["ready"], info["unacked"], info["acked"]) == (0, 0, n)
    # the default prefix is random: two runs do not collide
    a = jsonl(cli.ok("publish", "--queue", "bulk", "--count", 3))
    b = jsonl(cli.ok("publish", "--queue", "bulk", "--count", 3))
    assert not any(c["duplicate"] for c in a + b)
    assert len({c["id"] for c in a + b}) == 6
    assert a[0]["id"].endswith("-0")
    # the same prefix again: every message is a duplicate
    r = cli.ok("publish", "--queue", "bulk", "--count", 5,
               "--id-prefix", "rt")
    assert all(c["duplicate"] for c in jsonl(r))


def test_delay_and_ttl(cli):
    cli.ok("queue", "create", "timed")
    cli.ok("publish", "--queue", "timed", "--body", "late", "--id", "late",
           "--delay", 1000)
    assert cli.ok("consume", "timed", "--timeout", 200).out == ""
    got = jsonl(cli.ok("consume", "timed", "--timeout", 3000, "--max", 1))
    assert [d["id"] for d in got] == ["late"]
    cli.ok("publish", "--queue", "timed", "--body", "brief", "--ttl", 100)
    time.sleep(0.6)
    assert cli.ok("consume", "timed", "--timeout", 300).out == ""
    info = json.loads(cli.ok("queue", "info", "timed", "--json").out)
    assert info["expired"] == 1
    # --count with --delay and --ttl
    cli.ok("publish", "--queue", "timed", "--count", 3, "--delay", 300,
           "--ttl", 60000)
    info = json.loads(cli.ok("queue", "info", "timed", "--json").out)
    assert info["delayed"] == 3


def test_consume_modes(cli):
    cli.ok("queue", "create", "modes")
    cli.ok("publish", "--queue", "modes", "--count", 4, "--id-prefix", "m")
    # --max: exactly N, acked; the rest untouched (not redelivered)
    got = jsonl(cli.ok("consume", "modes", "--max", 1, "--prefetch", 10))
    assert [d["id"] for d in got] == ["m-0"]
    # --no-ack: printed, then back to the queue when the command exits
    got = jsonl(cli.ok("consume", "modes", "--max", 2, "--no-ack"))
    assert [(d["id"], d["delivery_count"]) for d in got] == [
        ("m-1", 1), ("m-2", 1)]
    # --release: back at once, not a failed delivery
    got = jsonl(cli.ok("consume", "modes", "--max", 1, "--release"))
    assert [(d["id"], d["redelivered"]) for d in got] == [("m-1", True)]
    # --nack: back as a failed delivery
    got = jsonl(cli.ok("consume", "modes", "--max", 1, "--nack"))
    assert got[0]["id"] in ("m-1", "m-2") and got[0]["redelivered"]
    info = json.loads(cli.ok("queue", "info", "modes", "--json").out)
    assert info["nacked"] == 1 and info["released"] == 1
    assert info["ready"] == 3 and info["acked"] == 1
    # default: everything left, acked, then stops after --timeout
    t0 = time.monotonic()
    got = jsonl(cli.ok("consume", "modes", "--timeout", 500,
                       "--prefetch", 2))
    assert sorted(d["id"] for d in got) == ["m-1", "m-2", "m-3"]
    assert 0.4 < time.monotonic() - t0 < 5
    info = json.loads(cli.ok("queue", "info", "modes", "--json").out)
    assert (info["ready"], info["unacked"], info["acked"]) == (0, 0, 4)


def test_topics(cli):
    r = cli.ok("topic", "create", "events")
    assert r.out == 'created topic "events"\n'
    cli.ok("topic", "create", "events")  # idempotent
    r = cli.ok("topic", "subscribe", "events", "audit", "--max-length",
               "1000")
    assert r.out == ('subscribed "audit" to topic "events": '
                     'queue "events:audit"\n')
    cli.ok("topic", "subscribe", "events", "mail")
    r = cli("topic", "subscribe", "nope", "s")
    assert one_error_line(r) == 'raftmq: topic "nope" not found'
    lst = cli.ok("topic", "list").out.splitlines()
    assert lst[0].split()[0] == "NAME"
    row = next(l.split() for l in lst if l.split()[0] == "events")
    assert row[1] == "2" and row[-1] == "events:audit,events:mail"
    (t,) = [t for t in json.loads(cli.ok("topic", "list", "--json").out)
            if t["name"] == "events"]
    assert t["subscriptions"] == 2
    assert t["queues"] == ["events:audit", "events:mail"]
    cli.ok("publish", "--topic", "events", "--body", "hi", "--id", "e1")
    for q in ("events:audit", "events:mail"):
        got = jsonl(cli.ok("consume", q, "--timeout", 300))
        assert [(d["id"], d["body"]) for d in got] == [("e1", "hi")]
    info = json.loads(cli.ok("queue", "info", "events:audit", "--json").out)
    assert info["topic"] == "events"
    assert info["settings"]["max_length"] == 1000
    r = cli.ok("topic", "unsubscribe", "events", "mail")
    assert r.out == 'unsubscribed "mail" from topic "events"\n'
    r = cli.ok("topic", "delete", "events")
    assert r.out == 'deleted topic "events"\n'
    r = cli("topic", "delete", "events")
    assert one_error_line(r) == 'raftmq: topic "events" not found'
    r = cli("publish", "--topic", "events", "--body", "x")
    assert one_error_line(r) == 'raftmq: topic "events" not found'


def test_stats(cli):
    cli.ok("queue", "create", "st-a")
    cli.ok("publish", "--queue", "st-a", "--count", 5)
    cli.ok("consume", "st-a", "--max", 2)
    out = cli.ok("stats").out.splitlines()
    head = out[0].split()
    for col in ("QUEUE", "READY", "UNACKED", "CONSUMERS", "PUBLISHED",
                "DELIVERED", "ACKED"):
        assert col in head, head
    row = dict(zip(head, next(l.split() for l in out
                              if l.split()[0] == "st-a")))
    assert (row["READY"], row["PUBLISHED"], row["DELIVERED"],
            row["ACKED"]) == ("3", "5", "2", "2")
    s = json.loads(cli.ok("stats", "--json").out)
    (q,) = [q for q in s["queues"] if q["name"] == "st-a"]
    assert (q["ready"], q["unacked"], q["published"], q["delivered"],
            q["acked"]) == (3, 0, 5, 2, 2)
    assert "consumers" in q and "topics" in s
    assert s["totals"]["queues"] == len(s["queues"])


def test_cluster_status_and_transfer(cli, cluster):
    lead = cluster.wait_leader()
    st = json.loads(cli.ok("cluster", "status", "--json").out)
    assert st["leader_id"] == lead.id and st["term"] >= 1
    assert st["commit_index"] >= 1
    nodes = {n["id"]: n for n in st["nodes"]}
    assert set(nodes) == {1, 2, 3}
    for n in cluster.nodes:
        assert nodes[n.id]["client_address"] == n.client_address
        assert nodes[n.id]["raft_address"] == n.raft_address
        assert nodes[n.id]["role"] == "voter"
        assert nodes[n.id]["reachable"] is True
    out = cli.ok("cluster", "status").out
    assert out.startswith("leader %d, term " % lead.id), out
    assert "CLIENT ADDRESS" in out and out.count("voter") == 3
    # transfer without a target, then to a named node
    r = cli.ok("cluster", "transfer")
    assert r.out.startswith("leadership transferred to node "), r
    new = int(r.out.split()[-1])
    assert new != lead.id
    assert cluster.wait_leader(exclude=(lead.id,)).id == new
    r = cli.ok("cluster", "transfer", lead.id)
    assert r.out == "leadership transferred to node %d\n" % lead.id
    deadline = time.monotonic() + 10
    while cluster.wait_leader().id != lead.id:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    r = cli("cluster", "transfer", 99)
    assert one_error_line(r).startswith(
        "raftmq: cannot transfer the leadership: "), r
    r = cli("cluster", "remove", 99)
    assert one_error_line(r).startswith("raftmq: cannot remove node 99: ")
    r = cli("cluster", "add", 1, "127.0.0.1:1", lead.client_address)
    assert one_error_line(r).startswith("raftmq: cannot add node 1: ")
    # the same node at its own address: a retry, which succeeds
    one = cluster.node(1)
    cli.ok("cluster", "add", 1, one.raft_address, one.client_address)
    # the cluster still works
    cli.ok("queue", "list")


def test_cluster_add_and_remove(cli, cluster):
    """A 4th node joins as a spare through `cluster add`, then leaves."""
    from raftmq_cluster import Node
    n4 = Node(cluster, 4)
    cluster.nodes.append(n4)
    n4.start(members="")
    r = cli.ok("cluster", "add", 4, n4.raft_address, n4.client_address,
               "--role", "spare")
    assert r.out == "added node 4 (%s) as spare\n" % n4.client_address
    st = json.loads(cli.ok("cluster", "status", "--json").out)
    (n,) = [n for n in st["nodes"] if n["id"] == 4]
    assert n["role"] == "spare" and n["client_address"] == n4.client_address
    r = cli.ok("cluster", "remove", 4)
    assert r.out == "removed node 4\n"
    st = json.loads(cli.ok("cluster", "status", "--json").out)
    assert 4 not in [n["id"] for n in st["nodes"]]
    n4.stop()
