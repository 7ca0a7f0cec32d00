"""The checker against hand-made histories: each planted fault is caught.

Each test builds a small history the way the workload records one
(invocation, then ok/fail/info) and asserts the one verdict it plants:
a lost value, a duplicate, an unexpected value, an indeterminate enqueue
that shows up (recovered), a failed enqueue that shows up, an ordering
violation, topic fan-out, and the EDN writer. Run: pytest jepsen/.
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from harness import checker, history  # noqa: E402


class H:
    """A tiny history builder: enq/deq append invoke + completion."""

    def __init__(self):
        self.ops = []
        self.t = 0

    def add(self, **op):
        self.t += 1000
        op.setdefault("time", self.t)
        op["index"] = len(self.ops)
        self.ops.append(op)

    def enq(self, v, outcome="ok", queue="q", process=0, node="n1",
            queues=None):
        self.add(type="invoke", f="enqueue", value=v, process=process,
                 queue=queue, queues=queues or [queue])
        self.add(type=outcome, f="enqueue", value=v, process=process,
                 queue=queue, queues=queues or [queue], node=node)

    def deq(self, v, queue="q", process=10, tag=None, count=1, consumer=1):
        self.add(type="invoke", f="dequeue", value=None, process=process,
                 queue=queue)
        self.add(type="ok", f="dequeue", value=v, process=process,
                 queue=queue, tag=tag if tag is not None else v,
                 delivery_count=count, consumer=consumer)

    def drain(self, vs, queue="q"):
        self.add(type="invoke", f="drain", value=None, process=99,
                 queue=queue)
        self.add(type="ok", f="drain", value=vs, process=99, queue=queue,
                 tags=vs, delivery_counts=[1] * len(vs), consumer=7)


def clean():
    h = H()
    for v in (1, 2, 3):
        h.enq(v)
    h.deq(1)
    h.drain([2, 3])
    return h


def test_clean_history_is_valid():
    r = checker.check(clean().ops)
    assert r["valid"]
    assert r["lost_count"] == r["unexpected_count"] == 0
    assert r["duplicated_count"] == r["recovered_count"] == 0
    assert r["enqueue"]["ok"] == 3


def test_lost_value_is_caught():
    h = clean()
    h.enq(4, node="n3")  # acknowledged, never dequeued
    r = checker.check(h.ops)
    assert not r["valid"]
    assert r["lost_count"] == 1 and r["lost"] == [("q", 4)]
    assert r["lost_by_node"] == {"n3": 1}


def test_duplicate_is_counted_but_valid():
    h = clean()
    h.deq(2, count=2)  # delivered again (at least once)
    r = checker.check(h.ops)
    assert r["valid"]
    assert r["duplicated_count"] == 1
    assert r["duplicated_extra_deliveries"] == 1


def test_unexpected_value_is_caught():
    h = clean()
    h.deq(42)  # never enqueued by anyone
    r = checker.check(h.ops)
    assert not r["valid"]
    assert r["unexpected_count"] == 1 and r["unexpected"] == [("q", 42)]


def test_indeterminate_enqueue_that_shows_up_is_recovered():
    h = clean()
    h.enq(5, outcome="info")
    h.deq(5, tag=10)
    r = checker.check(h.ops)
    assert r["valid"]
    assert r["recovered_count"] == 1 and r["recovered"] == [("q", 5)]


def test_unfinished_invocation_counts_as_indeterminate():
    h = clean()
    h.add(type="invoke", f="enqueue", value=6, process=3, queue="q",
          queues=["q"])
    h.deq(6, tag=11)
    r = checker.check(h.ops)
    assert r["valid"] and r["recovered_count"] == 1
    assert r["enqueue"]["info"] == 1


def test_failed_enqueue_that_shows_up_is_an_error():
    h = clean()
    h.enq(7, outcome="fail")
    h.deq(7, tag=12)
    r = checker.check(h.ops)
    assert not r["valid"]
    assert r["failed_dequeued_count"] == 1
    assert r["lost_count"] == 0 and r["unexpected_count"] == 0


def test_value_in_the_wrong_queue_is_unexpected_and_lost():
    h = clean()
    h.enq(8, queue="a")
    h.deq(8, queue="b")
    r = checker.check(h.ops)
    assert not r["valid"]
    assert r["lost"] == [("a", 8)] and r["unexpected"] == [("b", 8)]


def test_topic_fan_out_needs_every_subscription():
    h = clean()
    subs = ["t:s1", "t:s2"]
    h.enq(9, queue=None, queues=subs)
    h.deq(9, queue="t:s1")
    r = checker.check(h.ops)
    assert not r["valid"] and r["lost"] == [("t:s2", 9)]
    h.deq(9, queue="t:s2")
    assert checker.check(h.ops)["valid"]


def test_first_delivery_order_violation_is_counted():
    h = H()
    for v in (1, 2, 3):
        h.enq(v)
    h.deq(2)
    h.deq(1)          # first delivery of a lower seq after a higher one
    h.deq(2, count=2)  # redeliveries may come out of order: not counted
    h.deq(3)
    r = checker.check(h.ops)
    assert r["order_violation_count"] == 1
    assert r["order_violations"][0]["value"] == 1
    assert r["valid"]  # counted and flagged, not a safety violation


def test_order_is_per_consumer():
    h = H()
    for v in (1, 2):
        h.enq(v)
    h.deq(2, consumer=1)
    h.deq(1, consumer=2, process=11)
    assert checker.check(h.ops)["order_violation_count"] == 0


def test_unavailability_window():
    h = H()
    h.enq(1)
    h.t += 5 * 10**9   # five seconds without a confirm
    h.enq(2)
    h.drain([1, 2])
    r = checker.check(h.ops)
    assert 4.9 < r["longest_unavailability_s"] < 5.1


def test_nemesis_ops_are_ignored_by_the_checker():
    h = clean()
    h.add(type="invoke", f="start", value="kill", process="nemesis")
    h.add(type="info", f="start", value={"killed": "n2"}, process="nemesis")
    assert checker.check(h.ops)["valid"]


def test_edn_is_jepsen_shaped(tmp_path):
    h = clean()
    h.add(type="info", f="start", value={"killed": "n2"}, process="nemesis",
          fault="kill")
    p = tmp_path / "history.edn"
    history.write_edn(h.ops, str(p))
    lines = p.read_text().splitlines()
    assert lines[0].startswith("{:type :invoke, :f :enqueue, :value 1,")
    assert ":process :nemesis" in lines[-1]
    assert ':value {:killed "n2"}' in lines[-1]
    assert ":value [2 3]" in lines[-2]


def test_jsonl_round_trip(tmp_path):
    p = tmp_path / "h.jsonl"
    rec = history.History(str(p))
    inv = rec.invoke(0, "enqueue", 1, queue="q", queues=["q"])
    rec.complete(inv, "ok", node="n1")
    rec.close()
    ops = history.load(str(p))
    assert [o["type"] for o in ops] == ["invoke", "ok"]
    assert ops[1]["value"] == 1 and ops[1]["node"] == "n1"


def test_backlog_counts_acked_elements_not_yet_dequeued():
    h = H()
    h.enq(1)
    h.enq(2, queue=None, queues=["t:s1", "t:s2"])  # a topic: two elements
    h.t = 6 * 10**9
    h.deq(1)
    h.deq(1, count=2)  # a redelivery is not dequeued twice
    h.t = 12 * 10**9
    h.drain([])
    series = checker.backlog(h.ops, step_s=5.0)
    assert series == [(5.0, 3), (10.0, 2)]
