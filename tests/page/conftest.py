"""pytest fixtures for the status page test: a real 3-node cluster (the
cluster tests' harness, tests/lib/raftmq_cluster.py) and headless Chromium
(browser.py). Skips, with the reason, only when Chromium or chromedriver is
not installed."""
import os
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "lib"))
sys.path.insert(0, os.path.join(HERE, "..", "..", "client", "python"))

from raftmq_cluster import Cluster  # noqa: E402
import browser as browser_mod  # noqa: E402


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    setattr(item, "rep_" + rep.when, rep)


@pytest.fixture
def cluster(request):
    """A started 3-node cluster; its logs are printed if the test failed."""
    c = Cluster(3)
    try:
        c.start()
        yield c
    finally:
        failed = getattr(request.node, "rep_call", None)
        crashed = c.crashes()
        if (failed is not None and failed.failed) or crashed:
            sys.stderr.write(c.logs())
        c.cleanup()
    assert not crashed, "nodes crashed on their own: %s" % crashed


@pytest.fixture
def browser(tmp_path, request):
    why = browser_mod.missing()
    if why:
        pytest.skip(why)
    b = browser_mod.Browser(str(tmp_path / "chromium-profile"),
                            log_path=str(tmp_path / "chromedriver.log"))
    yield b
    b.close()
    failed = getattr(request.node, "rep_call", None)
    if failed is not None and failed.failed:
        with open(str(tmp_path / "chromedriver.log"), "rb") as f:
            sys.stderr.write(f.read().decode(errors="replace")[-4000:])


_outcomes = {"ran": 0, "skipped": 0}


def pytest_runtest_logreport(report):
    if report.skipped and not hasattr(report, "wasxfail"):
        _outcomes["skipped"] += 1
    elif report.when == "call":
        _outcomes["ran"] += 1


def pytest_sessionfinish(session, exitstatus):
    # Every test skipped (no Chromium): exit 77 so that meson says SKIP.
    if exitstatus == 0 and _outcomes["skipped"] and not _outcomes["ran"]:
        session.exitstatus = 77
