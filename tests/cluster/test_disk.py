"""Disk faults on real raftmqd nodes: a full disk, corrupted data files.

The full-disk tests need root (tmpfs mounts) and are skipped otherwise;
the corrupted-data tests run as any user. What libraft 0.22.1 does on
these faults, and so what raftmq does, is in docs/operations.md ("Disk
full", "Corrupted data"); these tests hold the code to that page.

Scenarios:
- Full disk on every node: each data dir is a 40 MiB tmpfs. Publishes of
  64 KiB are confirmed until the disks fill; then a publish fails at once
  with RESOURCE_LIMIT "not enough disk space" (no hang, no crash), reads keep
  working, every node stays live. After `mount -o remount,size=` makes
  room, publishes work again within libraft's disk retry period (5 s);
  the bodies kept in memory meanwhile reach the disk
  (raftmq_store_waiting_bodies back to 0);
  the refused ones, retried with the same msg_id, are stored once; every
  confirmed message is there exactly once and the replicas converge.
- Full disk on one node (a follower, or the leader): a filler file takes
  the free space. The other two still form a majority, so publishes keep
  being confirmed; the full node stays up and retries its writes. When the
  filler is deleted it catches up, and after a restart of that node the
  replicas converge and nothing confirmed is lost.
- Corrupted data on one stopped node (a follower when it has the file
  kind, else the leader): a byte flipped or the file cut in a closed log
  segment (the last one or an earlier one) or in a snapshot: the node
  refuses to start, exits 1 with a message naming the damaged file, and
  never runs on silently dropped entries. A damaged snapshot .meta file:
  libraft ignores that snapshot; the node either starts from an older
  snapshot and the log (complete state) or refuses to start naming the
  segment that no longer fits. The other two keep serving, with every
  confirmed message. With the original file put back the node starts,
  and the replicas converge with every confirmed message.
- A torn write at the end of an open segment (the crash case): the node
  truncates the torn batch, starts, catches up from the leader, and
  nothing confirmed is lost.
"""
import os
import shutil
import signal
import subprocess
import time

import pytest

import raftmq
from raftmq import pb

@pytest.fixture
def mounts():
    """mount(path, size) mounts a tmpfs; all are unmounted at the end,
    after the cluster (requested after this fixture) is gone. Tests that
    use it are skipped when not run as root (CI runs as root)."""
    if os.geteuid() != 0:
        pytest.skip("needs root to mount tmpfs data dirs")
    made = []

    def mount(path, size):
        os.makedirs(path, exist_ok=True)
        r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=" + size,
                            "tmpfs", path], capture_output=True, text=True)
        assert r.returncode == 0, "mount -t tmpfs %s failed: %s" % (
            path, r.stderr.strip())
        made.append(path)

    yield mount
    for path in reversed(made):
        subprocess.run(["umount", "-l", path], check=False)


def remount(path, size):
    subprocess.run(["mount", "-o", "remount,size=" + size, path], check=True)


def free_bytes(path):
    st = os.statvfs(path)
    return st.f_bavail * st.f_frsize


def closed_bytes(d):
    """Bytes in closed log segments ("FIRST-LAST" files) of data dir d."""
    return sum(os.path.getsize(os.path.join(d, x)) for x in os.listdir(d)
               if x[0].isdigit() and "-" in x)


def caught_up(cluster, timeout=30):
    """Waits until every live node has applied at least what the leader had
    applied when called, with the same state digest. (Cluster.wait_converged
    wants equal applied indexes: with a large state under ASan the status
    calls take long enough that the idle leader's barrier every 500 ms
    always lands between them.)"""
    target = cluster.wait_leader().status()["applied_index"]
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            st = [n.status(digest=True) for n in cluster.live()]
        except (OSError, ValueError):
            time.sleep(0.2)
            continue
        last = [(s["node_id"], s["applied_index"], s["state_digest"])
                for s in st]
        if all(a >= target for _, a, _ in last) and \
                len({d for _, _, d in last}) == 1:
            return
        time.sleep(0.2)
    raise AssertionError("nodes did not catch up to applied index %d with "
                         "one state: %s" % (target, last))


def start_without_leak_check(node):
    """Starts a node that is expected to refuse to start. raftmqd exits 1
    at once without freeing what it set up (cons_new: "the caller exits
    the process on this path"), which LeakSanitizer would turn into an
    abort in the ASan build (run.sh sets detect_leaks=1)."""
    old = os.environ.get("ASAN_OPTIONS")
    os.environ["ASAN_OPTIONS"] = "detect_leaks=0:abort_on_error=1"
    try:
        node.start()
    finally:
        if old is None:
            del os.environ["ASAN_OPTIONS"]
        else:
            os.environ["ASAN_OPTIONS"] = old


def wait_for(pred, timeout, what):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = pred()
        if v:
            return v
        time.sleep(0.1)
    raise AssertionError("timed out after %.0f s waiting for %s"
                         % (timeout, what))


def consume_all(client, queue, expect, timeout=15):
    """Consumes and acks everything; returns the msg_ids in order."""
    cid = client.consume(queue, prefetch=500)
    got = []
    while True:
        d = client.next_delivery(timeout=timeout if len(got) < expect
                                 else 0.5)
        if d is None:
            break
        got.append(d.msg_id)
        client.ack(cid, [d.tag])
    client.cancel(cid)
    return got


def assert_exactly(got, confirmed):
    missing = set(confirmed) - set(got)
    assert not missing, "%d confirmed messages lost, e.g. %s" % (
        len(missing), sorted(missing)[:5])
    dups = len(got) - len(set(got))
    assert dups == 0, "%d messages delivered twice" % dups
    extra = set(got) - set(confirmed)
    assert not extra, "unexpected messages %s" % sorted(extra)[:5]


# ----------------------------------------------------------- full disk

def test_disk_full_on_every_node(mounts, make_cluster):
    cluster = make_cluster(3, extra=["--max-message-bytes", "1M"],
                           start=False)
    for n in cluster.nodes:
        mounts(n.data_dir, "40m")
    cluster.start()
    c = raftmq.Client(cluster.addresses(), timeout=20)
    c.create_queue("q")
    body = b"d" * 65536
    confirmed = []
    refused = None
    t0 = time.monotonic()
    for i in range(2000):  # 125 MiB: far more than 3 x 40 MiB holds
        mid = b"m%d" % i
        try:
            c.publish("q", body, msg_id=mid)
        except raftmq.Error as e:
            refused = (mid, e, time.monotonic() - t0)
            break
        confirmed.append(mid)
    assert refused is not None, "40 MiB disks never filled"
    mid, err, _ = refused
    print("disks full after %d confirmed publishes: %s" % (len(confirmed),
                                                           err))
    assert err.code == pb.ERROR_CODE_RESOURCE_LIMIT, err
    assert "not enough disk space" in err.message, err.message
    assert "retry" in err.message, err.message
    # Later publishes fail as cleanly and as fast; reads still work.
    for k in range(3):
        t = time.monotonic()
        with pytest.raises(raftmq.Error) as e:
            c.publish("q", body, msg_id=b"again%d" % k)
        assert e.value.code == pb.ERROR_CODE_RESOURCE_LIMIT
        assert time.monotonic() - t < 5
    assert c.queue_info("q").ready >= len(confirmed)
    for n in cluster.nodes:
        assert n.alive(), "node %d died on a full disk" % n.id
        assert n.http("/healthz/live")[0] == 200
    assert not cluster.crashes()

    # Room again: publishes succeed within the disk retry period, and the
    # refused ones retried with their ids are stored once.
    for n in cluster.nodes:
        remount(n.data_dir, "160m")
    retried = [mid] + [b"again%d" % k for k in range(3)]
    deadline = time.monotonic() + 30
    for r in retried:
        while True:
            try:
                c.publish("q", body, msg_id=r)
                break
            except raftmq.Error as e:
                assert e.code == pb.ERROR_CODE_RESOURCE_LIMIT, e
                assert time.monotonic() < deadline, \
                    "publishes still refused 30 s after space returned"
                time.sleep(0.5)
    confirmed += retried
    for i in range(20):
        c.publish("q", b"after", msg_id=b"after%d" % i)
        confirmed.append(b"after%d" % i)
    caught_up(cluster)
    # The bodies that waited in memory reach the disk (4 MiB per loop
    # iteration, so that the leader keeps its heartbeats).
    wait_for(lambda: all(n.metric("raftmq_store_waiting_bodies") == 0
                         for n in cluster.nodes), 30,
             "the bodies kept in memory to reach the disk")
    got = consume_all(c, "q", len(confirmed))
    assert_exactly(got, confirmed)
    assert not cluster.crashes()


@pytest.mark.parametrize("which", ["follower", "leader"])
def test_disk_full_on_one_node(mounts, make_cluster, which):
    cluster = make_cluster(3, start=False)
    full = cluster.nodes[0]
    # Room for the 40 MiB below twice (the Raft log and the body store
    # both hold the bodies until a snapshot truncates the log).
    mounts(full.data_dir, "128m")
    cluster.start()
    c = raftmq.Client(cluster.addresses(), timeout=20)
    lead = cluster.wait_leader()
    if which == "leader" and lead is not full:
        c.cluster_transfer(full.id)
        wait_for(lambda: cluster.leader() is full, 15, "the transfer")
    elif which == "follower" and lead is full:
        other = cluster.nodes[1]
        c.cluster_transfer(other.id)
        wait_for(lambda: cluster.leader() is other, 15, "the transfer")
    c.create_queue("q")
    confirmed = []
    for i in range(50):
        c.publish("q", b"before", msg_id=b"b%d" % i)
        confirmed.append(b"b%d" % i)
    # a filler file leaves 1 MiB
    filler = os.path.join(full.data_dir, "filler")
    with open(filler, "wb") as f:
        f.write(b"\0" * (free_bytes(full.data_dir) - (1 << 20)))
    body = b"o" * 65536
    n = 640  # 40 MiB: more than the segments raft_uv had prepared (24 MiB)
    t0 = time.monotonic()
    for i in range(n):
        c.publish("q", body, msg_id=b"o%d" % i)
        confirmed.append(b"o%d" % i)
    took = time.monotonic() - t0
    healthy = next(x for x in cluster.nodes if x is not full)
    print("%s full: %d publishes of 64 KiB confirmed in %.1f s; closed "
          "segments: full node %.1f MiB, healthy node %.1f MiB"
          % (which, n, took, closed_bytes(full.data_dir) / 2**20,
             closed_bytes(healthy.data_dir) / 2**20))
    assert full.alive() and not cluster.crashes()
    assert full.http("/healthz/live")[0] == 200
    # the full node could not write them all
    assert closed_bytes(full.data_dir) + (8 << 20) < \
        closed_bytes(healthy.data_dir)

    os.unlink(filler)
    c.publish("q", b"after", msg_id=b"after")
    confirmed.append(b"after")
    caught_up(cluster)
    # The full node must have written everything: restart it and check.
    assert full.stop(timeout=20) == 0
    full.start()
    cluster.wait_ready(timeout=30)
    caught_up(cluster)
    for n in cluster.nodes:
        for line in n.log().splitlines():
            if "barrier" in line:
                print(line)
    got = consume_all(raftmq.Client(cluster.addresses(), timeout=20), "q",
                      len(confirmed))
    assert_exactly(got, confirmed)
    assert not cluster.crashes()


# ------------------------------------------------------ corrupted data

def flip(path, offset):
    with open(path, "r+b") as f:
        f.seek(offset)
        b = f.read(1)
        f.seek(offset)
        f.write(bytes([b[0] ^ 0xFF]))


def segments(d):
    return sorted((x for x in os.listdir(d)
                   if x[0].isdigit() and "-" in x),
                  key=lambda x: int(x.split("-")[0]))


def snapshots(d):
    return sorted((x for x in os.listdir(d)
                   if x.startswith("snapshot-") and not x.endswith(".meta")),
                  key=lambda x: [int(p) for p in x.split("-")[1:]])


def corrupt(kind, d):
    """Damages one file of data dir d; returns its name."""
    if kind.startswith("segment"):
        segs = segments(d)
        assert len(segs) >= 2, segs
        name = segs[0] if kind == "segment-earlier" else segs[-1]
        path = os.path.join(d, name)
        if kind == "segment-cut":
            os.truncate(path, os.path.getsize(path) // 2)
        else:
            flip(path, os.path.getsize(path) // 2)
    else:
        name = snapshots(d)[-1]
        if kind == "snapshot-meta":
            name += ".meta"
        path = os.path.join(d, name)
        if kind == "snapshot-cut":
            os.truncate(path, os.path.getsize(path) // 2)
        else:
            flip(path, os.path.getsize(path) - 3)
    return name


@pytest.mark.parametrize("kind", ["segment-last", "segment-earlier",
                                  "segment-cut", "snapshot-flip",
                                  "snapshot-cut", "snapshot-meta"])
def test_corrupted_file_on_one_node(make_cluster, kind):
    # small snapshots so that there are closed segments and snapshots
    cluster = make_cluster(3, extra=["--snapshot-threshold", "64",
                                     "--snapshot-trailing", "100"])
    c = raftmq.Client(cluster.addresses(), timeout=20)
    c.create_queue("q")
    confirmed = []
    for i in range(400):
        c.publish("q", b"c" * 2000, msg_id=b"c%d" % i)
        confirmed.append(b"c%d" % i)
    caught_up(cluster)
    # A follower if one has what `kind` damages (followers take no
    # snapshot in their first seconds), else the leader.
    lead = cluster.wait_leader()
    f = next(n for n in [x for x in cluster.nodes if x is not lead] + [lead]
             if (snapshots(n.data_dir) if kind.startswith("snapshot")
                 else len(segments(n.data_dir)) >= 2))
    assert f.stop(timeout=20) == 0
    d = f.data_dir
    backup = d + ".orig"
    shutil.copytree(d, backup)
    name = corrupt(kind, d)

    log_before = len(f.log())
    start_without_leak_check(f)
    deadline = time.monotonic() + 30
    rc = None
    while time.monotonic() < deadline:
        rc = f.proc.poll()
        try:
            if rc is not None or f.http("/healthz/ready")[0] == 200:
                break
        except OSError:
            pass
        time.sleep(0.1)
    out = f.log()[log_before:]
    if kind == "snapshot-meta" and rc is None:
        # libraft ignores a snapshot whose .meta it cannot read. Here the
        # log still holds every entry since an older snapshot (or since
        # index 1), so the node runs with the complete state: checked
        # below by convergence and by consuming everything.
        print("%s: ignored, the node started from the log" % kind)
        restarted = False
    else:
        assert rc == 1, "node started on a corrupted %s (%s): %s" % (
            kind, name, out[-2000:])
        last = [x for x in out.splitlines()
                if x.startswith("raftmqd:")][-1]
        print("%s: %s" % (kind, last))
        if kind == "snapshot-meta":
            # Without that snapshot the log no longer fits: libraft
            # names the segment and the snapshot it fell back to.
            assert "is past last snapshot" in last, last
        else:
            assert name in last, last
        # nothing was renamed or deleted behind the operator's back
        assert sorted(os.listdir(d)) == sorted(os.listdir(backup))
        restarted = True

    # The other two serve, with everything.
    for i in range(20):
        c.publish("q", b"two", msg_id=b"t%d" % i)
        confirmed.append(b"t%d" % i)
    assert c.queue_info("q").ready == len(confirmed)

    if restarted:
        # Put the good file back: the node starts and converges.
        shutil.copy2(os.path.join(backup, name), os.path.join(d, name))
        f.start()
    cluster.wait_ready(timeout=30)
    caught_up(cluster)
    got = consume_all(c, "q", len(confirmed))
    assert_exactly(got, confirmed)
    assert not cluster.crashes()


def kill_follower_and_find_tail(cluster, n_msgs):
    """Publishes n_msgs, kills a follower with SIGKILL; returns (follower,
    open segment path, offset of the end of its data, confirmed ids)."""
    c = raftmq.Client(cluster.addresses(), timeout=20)
    c.create_queue("q")
    confirmed = []
    for i in range(n_msgs):
        c.publish("q", b"t" * 1000, msg_id=b"t%d" % i)
        confirmed.append(b"t%d" % i)
    caught_up(cluster)
    lead = cluster.wait_leader()
    f = next(n for n in cluster.nodes if n is not lead)
    f.kill(signal.SIGKILL)
    tails = []
    for x in os.listdir(f.data_dir):
        if x.startswith("open-"):
            with open(os.path.join(f.data_dir, x), "rb") as fh:
                end = len(fh.read().rstrip(b"\0"))
            if end > 8:
                tails.append((end, os.path.join(f.data_dir, x)))
    assert tails, os.listdir(f.data_dir)
    end, path = max(tails)
    return c, f, path, end, confirmed


def test_torn_write_after_crash(make_cluster):
    """A crash in the middle of a write leaves a partial batch after the
    last complete one (never acknowledged: raft_uv acknowledges after the
    write and fsync). The loader truncates it; the node starts and catches
    up."""
    cluster = make_cluster(3)
    c, f, path, end, confirmed = kill_follower_and_find_tail(cluster, 300)
    with open(path, "r+b") as fh:
        fh.seek((end + 7) // 8 * 8)
        fh.write(b"\x5a" * 8 + b"\x01" * 300)  # bad checksums, cut data
    f.start()
    cluster.wait_ready(timeout=30)
    for i in range(20):
        c.publish("q", b"after", msg_id=b"a%d" % i)
        confirmed.append(b"a%d" % i)
    caught_up(cluster)
    got = consume_all(c, "q", len(confirmed))
    assert_exactly(got, confirmed)
    assert not cluster.crashes()


def test_lost_acknowledged_tail_on_one_follower(make_cluster):
    """The last batch of a follower's open segment is damaged although it
    had been acknowledged (bit rot, a disk that lied about fsync). libraft's
    loader cannot tell this from a torn write: it truncates the batch and
    the node starts with a shorter log than it acknowledged. The leader
    then ignores the follower's rejections as stale (it believes the
    follower has those entries), so the follower stays behind until the
    next leader change (docs/operations.md, "Corrupted data"). Checked
    here: the cluster keeps every confirmed message and stays available,
    and after `cluster transfer` the follower catches up."""
    cluster = make_cluster(3)
    c, f, path, end, confirmed = kill_follower_and_find_tail(cluster, 300)
    with open(path, "r+b") as fh:
        fh.seek(end - 100)
        fh.write(b"\0" * 100)
    f.start()
    cluster.wait_ready(timeout=30)
    for i in range(20):
        c.publish("q", b"after", msg_id=b"a%d" % i)
        confirmed.append(b"a%d" % i)
    time.sleep(2)
    lead = cluster.wait_leader()
    behind = lead.status()["applied_index"] - f.status()["applied_index"]
    print("follower behind by %d entries before the transfer" % behind)
    assert c.queue_info("q").ready == len(confirmed)
    other = next(n for n in cluster.nodes if n is not f and n is not lead)
    c.cluster_transfer(other.id)
    wait_for(lambda: cluster.leader() is other, 15, "the transfer")
    c.publish("q", b"last", msg_id=b"last")
    confirmed.append(b"last")
    caught_up(cluster)
    got = consume_all(c, "q", len(confirmed))
    assert_exactly(got, confirmed)
    assert not cluster.crashes()
