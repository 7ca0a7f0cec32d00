"""Group-commit limits end to end: max_batch_bytes.

Scenario (the reproduction of the bug): one node with
--max-batch-bytes 1k --max-inflight-batches 1, and 3000 publishes of
16 KiB pipelined on one connection (sent without waiting for confirms, so
many arrive while the one batch in flight is being written). Each publish
is larger than the limit, so each must go into a log entry of its own: the
raftmq_batches_proposed_total metric grows by as much as
raftmq_commands_batched_total. Before the fix the node counted a batch's
bytes only after the batch had closed, so the byte limit never closed one:
482 entries for 3002 commands (about 100 KiB per entry).

With --max-batch-bytes 64k the same load gives at most three publishes per
entry (three take 48 KiB and a bit; a fourth would pass 64 KiB). The
default limit (1 MiB) is the control: there the same load does batch, so
the two tests above measure the byte limit and not a load that never
batches."""
import socket
import struct
import threading

import raftmq
from raftmq import pb

N = 3000
BODY = b"x" * 16384


def counts(node):
    return (node.metric("raftmq_batches_proposed_total"),
            node.metric("raftmq_commands_batched_total"))


def frame(env):
    data = env.SerializeToString()
    return struct.pack(">I", len(data)) + data


def publish_pipelined(node, queue, n, body):
    """Sends n publishes on one connection without waiting, then reads the
    n confirms; returns how many were confirmed."""
    s = socket.create_connection(("127.0.0.1", node.client_port),
                                 timeout=120)
    s.sendall(frame(pb.Envelope(version=1, correlation_id=1,
                                hello=pb.Hello(protocol_version=1))))
    data = b"".join(
        frame(pb.Envelope(version=1, correlation_id=2 + i,
                          publish=pb.Publish(queue=queue, body=body)))
        for i in range(n))
    writer = threading.Thread(target=s.sendall, args=(data,))
    writer.start()
    buf = b""
    answers = {}
    while len(answers) < n + 1:
        chunk = s.recv(1 << 16)
        assert chunk, "connection closed after %d answers" % len(answers)
        buf += chunk
        while len(buf) >= 4 and len(buf) >= 4 + struct.unpack(
                ">I", buf[:4])[0]:
            size = struct.unpack(">I", buf[:4])[0]
            env = pb.Envelope()
            env.ParseFromString(buf[4:4 + size])
            buf = buf[4 + size:]
            answers[env.correlation_id] = env
    writer.join()
    s.close()
    refused = [e.error.message for e in answers.values()
               if e.WhichOneof("body") == "error"]
    assert not refused, refused[:3]
    return sum(1 for e in answers.values()
               if e.WhichOneof("body") == "publish_result")


def run(make_cluster, extra):
    cluster = make_cluster(1, extra=extra + [
        "--max-inflight-batches", "1", "--max-message-bytes", "64k"])
    lead = cluster.wait_leader()
    raftmq.Client(lead.client_address).create_queue("big")
    entries0, commands0 = counts(lead)
    assert publish_pipelined(lead, "big", N, BODY) == N
    entries1, commands1 = counts(lead)
    c = raftmq.Client(lead.client_address)
    assert c.queue_info("big").ready == N
    return entries1 - entries0, commands1 - commands0


def test_max_batch_bytes_one_publish_per_entry(make_cluster):
    entries, commands = run(make_cluster, ["--max-batch-bytes", "1k"])
    assert N <= commands <= N + 2  # (a TICK may slip in)
    # Every publish is over 1 KiB: one per entry.
    assert entries == commands, \
        "%d entries for %d commands" % (entries, commands)


def test_max_batch_bytes_bounds_each_entry(make_cluster):
    entries, commands = run(make_cluster, ["--max-batch-bytes", "64k"])
    assert N <= commands <= N + 2
    # At most three 16 KiB publishes fit in 64 KiB.
    assert entries * 3 >= commands, \
        "%d entries for %d commands" % (entries, commands)


def test_default_limit_batches_the_same_load(make_cluster):
    entries, commands = run(make_cluster, [])
    assert N <= commands <= N + 2
    # 1 MiB holds 60 such publishes: the pipelined load does batch (at
    # least two per entry on average), so the limits above are what split
    # it.
    assert entries * 2 <= commands, \
        "%d entries for %d commands" % (entries, commands)
