"""pytest fixtures for the example tests: a real 3-node cluster per test
(tests/lib/raftmq_cluster.py), its logs printed if the test failed."""
import os
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "lib"))

from raftmq_cluster import Cluster  # noqa: E402


@pytest.fixture
def cluster(request):
    c = Cluster(3)
    c.start()
    yield c
    failed = getattr(request.node, "rep_call", None)
    crashed = c.crashes()
    if (failed is not None and failed.failed) or crashed:
        sys.stderr.write(c.logs())
    c.cleanup()
    assert not crashed, "nodes crashed on their own: %s" % crashed


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    setattr(item, "rep_" + rep.when, rep)
