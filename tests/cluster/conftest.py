"""pytest fixtures for the multi-process cluster tests."""
import os
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "lib"))
sys.path.insert(0, os.path.join(HERE, "..", "..", "client", "python"))

from raftmq_cluster import Cluster  # noqa: E402


@pytest.fixture
def make_cluster(request):
    """make_cluster(n=3, extra=[...]) -> a started Cluster, cleaned up
    afterwards; its logs are printed if the test failed."""
    made = []

    def make(n=3, extra=None, start=True):
        c = Cluster(n, extra)
        made.append(c)
        if start:
            c.start()
        return c

    yield make
    failed = getattr(request.node, "rep_call", None)
    for c in made:
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


@pytest.fixture
def cluster(make_cluster):
    return make_cluster(3)
