"""Runs each program of examples/ against a real 3-node cluster and checks
its output and exit code, as its README says.

The C example's binary is $EXAMPLE_ORDERS (meson sets it), else
build/plain/examples/orders. The Python examples run with this interpreter
and the client from client/python (client_pb2 from $PYTHONPATH). The
`cluster` fixture (conftest.py) is a fresh cluster per test.
"""
import os
import re
import subprocess
import sys
import time

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))


def run(cmd, cluster, timeout=120):
    env = dict(os.environ)
    env["RAFTMQ_CLUSTER"] = cluster.addresses()
    env["PYTHONPATH"] = os.pathsep.join(
        [os.path.join(ROOT, "client", "python")] +
        [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p])
    p = subprocess.run(cmd, env=env, capture_output=True, text=True,
                       timeout=timeout)
    sys.stdout.write(p.stdout)
    sys.stderr.write(p.stderr)
    return p


def orders_path():
    p = os.environ.get("EXAMPLE_ORDERS")
    if p:
        return p
    for d in ("build/plain", "build/dev", "build/local"):
        c = os.path.join(ROOT, d, "examples", "orders")
        if os.path.exists(c):
            return c
    pytest.skip("examples/orders not built: build it or set EXAMPLE_ORDERS")


def test_orders(cluster):
    p = run([orders_path(), "-n", "100", "-w", "4"], cluster)
    assert p.returncode == 0
    # Orders ending in 7 are poison, those ending in 3 succeed when retried.
    assert "published 100 orders to \"orders\"" in p.stdout
    assert ("summary: 100 orders, 90 processed (10 after a retry), "
            "10 dead-lettered") in p.stdout
    dead = re.findall(r"dead-lettered: order-(\d+) \(max-deliveries in "
                      r"\"orders\"\)", p.stdout)
    assert sorted(int(n) for n in dead) == list(range(7, 100, 10))
    # The workers compete: the work is spread over them (not checked for
    # all four: a worker that attaches late may find nothing left).
    per_worker = [int(n) for n in
                  re.findall(r"worker \d+ processed (\d+) orders", p.stdout)]
    assert len(per_worker) == 4 and sum(per_worker) == 90
    assert sum(n > 0 for n in per_worker) >= 2, per_worker


def test_orders_survives_leader_failover(cluster):
    """The leader dies mid-run: the library fails over and re-attaches the
    consumers, redelivered orders are counted once, and every order still
    ends up processed or dead-lettered."""
    env = dict(os.environ, RAFTMQ_CLUSTER=cluster.addresses())
    p = subprocess.Popen([orders_path(), "-n", "2000", "-w", "4"], env=env,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         text=True)
    time.sleep(1.0)
    cluster.wait_leader().kill()
    out, err = p.communicate(timeout=120)
    sys.stdout.write(out)
    sys.stderr.write(err)
    assert p.returncode == 0
    assert re.search(r"^summary: 2000 orders, 1800 processed \(\d+ after a "
                     r"retry\), 200 dead-lettered$", out, re.M)


def test_orders_rerun_starts_from_zero(cluster):
    """A second run on the same cluster counts only its own orders."""
    for _ in range(2):
        p = run([orders_path(), "-n", "20", "-w", "2"], cluster)
        assert p.returncode == 0
        assert ("summary: 20 orders, 18 processed (2 after a retry), "
                "2 dead-lettered") in p.stdout


def test_notifications(cluster):
    script = os.path.join(ROOT, "examples", "notifications",
                          "notifications.py")
    for _ in range(2):  # a rerun counts from zero as well
        p = run([sys.executable, script, "--events", "30"], cluster)
        assert p.returncode == 0
        assert "published 30 events to topic 'notifications'" in p.stdout
        for sub in ("email", "push", "audit"):
            assert re.search(r"^%s: +30 events \(signup 10, order-shipped "
                             r"10, password-reset 10\)$" % sub, p.stdout,
                             re.M), sub


def test_log_collection(cluster, tmp_path):
    script = os.path.join(ROOT, "examples", "log-collection",
                          "log_collection.py")
    out = tmp_path / "collected.log"
    p = run([sys.executable, script, "--producers", "8", "--lines", "500",
             "--batch", "50", "--fetch", "200", "--output", str(out)],
            cluster)
    assert p.returncode == 0
    assert "collected 4000 lines into %s" % out in p.stdout
    assert "check: every line arrived exactly once" in p.stdout
    lines = out.read_text().splitlines()
    assert len(lines) == 4000 and len(set(lines)) == 4000
    # Lines of one producer stay in order (one queue, FIFO first deliveries).
    app1 = [ln for ln in lines if ln.startswith("app1 ")]
    assert app1 == sorted(app1) and len(app1) == 500
