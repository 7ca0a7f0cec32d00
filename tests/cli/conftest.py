"""pytest fixtures for the raftmq CLI tests: one real 3-node cluster per
test module (tests/lib/raftmq_cluster.py) and a runner for the binary
($RAFTMQ_CLI, set by meson; else the first build dir that has it)."""
import os
import subprocess
import sys
import time

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(HERE, "..", "lib"))

from raftmq_cluster import Cluster, serve  # noqa: E402


def cli_path():
    p = os.environ.get("RAFTMQ_CLI")
    if p:
        return p
    for d in ("build/plain", "build/dev", "build/sanitize"):
        c = os.path.join(ROOT, d, "client", "cli", "raftmq")
        if os.path.exists(c):
            return c
    raise RuntimeError("raftmq CLI not found: build it or set RAFTMQ_CLI")


class Result:
    def __init__(self, proc, elapsed):
        self.rc = proc.returncode
        self.out = proc.stdout
        self.err = proc.stderr
        self.elapsed = elapsed

    def lines(self):
        return [l for l in self.out.splitlines() if l]

    def __repr__(self):
        return "rc=%d out=%r err=%r" % (self.rc, self.out[:2000],
                                         self.err[:2000])


class Cli:
    """Runs `raftmq --cluster <addresses> ARGS...`."""

    def __init__(self, cluster):
        self.cluster = cluster

    def __call__(self, *args, cluster=True, env=None, input=None,
                 timeout=60):
        argv = [cli_path()]
        if cluster and self.cluster is not None:
            argv += ["--cluster", self.cluster.addresses()]
        argv += [str(a) for a in args]
        e = dict(os.environ)
        e.pop("RAFTMQ_CLUSTER", None)
        e.update(env or {})
        t0 = time.monotonic()
        p = subprocess.run(argv, capture_output=True, text=True, env=e,
                           input=input, timeout=timeout)
        return Result(p, time.monotonic() - t0)

    def ok(self, *args, **kw):
        r = self(*args, **kw)
        assert r.rc == 0, r
        assert r.err == "", r
        return r


@pytest.fixture(scope="module")
def cluster():
    yield from serve(Cluster(3))


@pytest.fixture
def cli(cluster):
    return Cli(cluster)


@pytest.fixture
def bare_cli():
    """The CLI without --cluster and without a cluster."""
    return Cli(None)
