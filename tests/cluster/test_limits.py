"""Limits and shutdown, on a real cluster.

- Memory alarm: with a small memory_limit, bodies (in the body store)
  do not count, but what stays in memory per message does: publishes are
  refused with RESOURCE_LIMIT (and a sentence) instead of the node
  growing; once the queue is drained they are accepted again. The alarm
  is a metric.
- Disk alarm: with a small disk_limit, publishes are refused with
  RESOURCE_LIMIT once the body store holds that much, and accepted again
  once the queue is drained and the store collected.
- max_connections: the connection over the limit gets RESOURCE_LIMIT and
  is closed; the others keep working.
- Bad frames: a length over max_frame_bytes is answered with
  FRAME_TOO_LARGE and the connection closed; a frame that is not an
  Envelope gets MALFORMED and the connection stays; a newer protocol
  version gets UNSUPPORTED_VERSION. The node stays up.
- SIGTERM on the leader hands leadership over (faster than an election
  timeout) and the process exits 0."""
import socket
import struct
import time

import raftmq
from raftmq import pb


def test_memory_alarm(make_cluster):
    cluster = make_cluster(3, extra=["--memory-limit", "2M",
                                     "--max-message-bytes", "64k"])
    c = raftmq.Client(cluster.addresses())
    c.create_queue("big")
    # Bodies live in the body store, not in memory: 4 MiB of them fit
    # under a 2 MiB limit (the log that carried them is let go by the
    # snapshots that the limit makes due).
    for i in range(256):
        c.publish("big", b"x" * 16384)
    # What stays in memory per message does count: small messages in
    # batches until the alarm refuses them.
    refused = None
    for i in range(200):
        try:
            c.publish_batch("big", [b"y" * 32] * 500)
        except raftmq.Error as e:
            refused = e
            break
    assert refused is not None, "2 MiB limit never reached"
    assert refused.code == pb.ERROR_CODE_RESOURCE_LIMIT
    assert "memory_limit" in refused.message
    stored = c.queue_info("big").ready
    assert 2000 < stored < 60000, stored
    lead = cluster.wait_leader()
    code, text = lead.http("/metrics")
    assert "raftmq_memory_alarm 1" in text
    assert "raftmq_publishes_refused_memory_total 1" in text
    # drain: publishes work again once the next snapshot has let the log
    # that carried the purge go (the leader's idle barriers apply it).
    assert c.purge_queue("big") == stored
    deadline = time.monotonic() + 15
    while "raftmq_memory_alarm 0" not in lead.http("/metrics")[1]:
        assert time.monotonic() < deadline, "alarm still on after a purge"
        time.sleep(0.1)
    c.publish("big", b"x" * 16384)


def test_disk_alarm(make_cluster):
    cluster = make_cluster(3, extra=["--disk-limit", "1M",
                                     "--store-segment-bytes", "64k",
                                     "--snapshot-threshold", "32"])
    c = raftmq.Client(cluster.addresses())
    c.create_queue("q")
    refused = None
    for i in range(200):
        try:
            c.publish("q", b"d" * 16384)
        except raftmq.Error as e:
            refused = e
            break
    assert refused is not None, "1 MiB disk limit never reached"
    assert refused.code == pb.ERROR_CODE_RESOURCE_LIMIT
    assert "disk_limit" in refused.message
    stored = c.queue_info("q").ready
    assert 40 < stored < 120, stored
    lead = cluster.wait_leader()
    text = lead.http("/metrics")[1]
    assert "raftmq_disk_alarm 1" in text
    assert "raftmq_publishes_refused_disk_total 1" in text
    # Drained and gc'd after the next snapshots: publishes work again.
    # (Purges of the empty queue are log entries too: they bring the next
    # snapshots sooner than the leader's idle barriers would.)
    assert c.purge_queue("q") == stored
    deadline = time.monotonic() + 15
    while "raftmq_disk_alarm 0" not in lead.http("/metrics")[1]:
        assert time.monotonic() < deadline, "disk alarm on after a purge"
        c.purge_queue("q")
        time.sleep(0.02)
    c.publish("q", b"d" * 16384)


def connections(node):
    code, text = node.http("/metrics")
    assert code == 200
    return next(int(line.split()[1]) for line in text.splitlines()
                if line.startswith("raftmq_connections "))


def test_max_connections(make_cluster):
    # The two followers each hold a connection to the leader (node_watch.c):
    # 2 of the 5 slots, then 3 clients, then the next one is refused.
    cluster = make_cluster(3, extra=["--max-connections", "5"])
    lead = cluster.wait_leader()
    deadline = time.monotonic() + 10
    while connections(lead) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert connections(lead) == 2
    held = [raftmq.Client(lead.client_address) for _ in range(3)]
    s = socket.create_connection(("127.0.0.1", lead.client_port), timeout=5)
    data = b""
    while len(data) < 4 or len(data) < 4 + struct.unpack(">I", data[:4])[0]:
        chunk = s.recv(4096)
        assert chunk, "closed without an error frame"
        data += chunk
    env = pb.Envelope()
    env.ParseFromString(data[4:])
    assert env.error.code == pb.ERROR_CODE_RESOURCE_LIMIT
    assert "max_connections" in env.error.message
    assert s.recv(1) == b""  # closed
    for c in held:
        c.cluster_status()


def frame(env):
    data = env.SerializeToString()
    return struct.pack(">I", len(data)) + data


def read_env(s):
    data = b""
    while len(data) < 4 or len(data) < 4 + struct.unpack(">I", data[:4])[0]:
        chunk = s.recv(65536)
        if not chunk:
            return None
        data += chunk
    env = pb.Envelope()
    env.ParseFromString(data[4:4 + struct.unpack(">I", data[:4])[0]])
    return env


def test_bad_frames(cluster):
    lead = cluster.wait_leader()
    s = socket.create_connection(("127.0.0.1", lead.client_port), timeout=5)
    s.sendall(struct.pack(">I", 5) + b"\xff\xff\xff\xff\xff")
    e = read_env(s)
    assert e.error.code == pb.ERROR_CODE_MALFORMED
    s.sendall(frame(pb.Envelope(version=99, correlation_id=7,
                                hello=pb.Hello())))
    e = read_env(s)
    assert e.correlation_id == 7
    assert e.error.code == pb.ERROR_CODE_UNSUPPORTED_VERSION
    assert e.error.supported_version == pb.PROTOCOL_VERSION_CURRENT
    s.sendall(frame(pb.Envelope(version=1, correlation_id=8)))
    e = read_env(s)
    assert e.error.code == pb.ERROR_CODE_MALFORMED
    s.sendall(frame(pb.Envelope(version=1, correlation_id=9,
                                hello=pb.Hello())))
    assert read_env(s).WhichOneof("body") == "hello_result"
    s.sendall(struct.pack(">I", 100 << 20))
    e = read_env(s)
    assert e.error.code == pb.ERROR_CODE_FRAME_TOO_LARGE
    assert read_env(s) is None  # closed
    # a frame cut in the middle, then the client goes away
    s = socket.create_connection(("127.0.0.1", lead.client_port), timeout=5)
    s.sendall(frame(pb.Envelope(version=1, correlation_id=1,
                                hello=pb.Hello()))[:7])
    s.close()
    c = raftmq.Client(lead.client_address)
    assert c.cluster_status().leader_id == lead.id
    assert lead.alive()


def test_sigterm_hands_over_leadership(cluster):
    lead = cluster.wait_leader()
    c = raftmq.Client(cluster.addresses())
    c.create_queue("q")
    c.publish("q", b"before")
    t0 = time.monotonic()
    rc = lead.stop(timeout=15)
    new = cluster.wait_leader(timeout=10, exclude=(lead.id,))
    took = time.monotonic() - t0
    assert rc == 0
    print("leadership handed over in %.2f s" % took)
    # a transfer is much faster than waiting for an election timeout
    assert took < 1.0, took
    assert "transfer" in lead.log()
    c.publish("q", b"after")
    assert c.queue_info("q").ready == 2
    assert new.alive()
