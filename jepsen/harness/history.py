"""The history: every operation as an invocation and a completion.

An operation is a dict in Jepsen's shape:

    {"index": 7, "type": "invoke"|"ok"|"fail"|"info", "f": "enqueue",
     "process": 3, "time": <ns since the test started>, "value": 42, ...}

plus raftmq's own keys: "node" (the node that answered, n1..n5, or the one
tried last), "queue"/"topic", and for deliveries "tag", "delivery_count",
"consumer". Types follow Jepsen: ok = it happened, fail = it certainly did
not, info = unknown (the process that got it is then considered crashed and
continues under a new process number, as in Jepsen). The nemesis records
its faults with process "nemesis" and type info.

Lines are appended to history.jsonl as they happen (flushed, so a harness
crash keeps them); history.edn is written at the end for Jepsen's own
checkers (jepsen.checker/total-queue reads :enqueue, :dequeue and :drain).
"""
import json
import threading
import time


class History:
    def __init__(self, path):
        self.lock = threading.Lock()
        self.ops = []
        self.t0 = time.monotonic_ns()
        self.t0_wall = time.time()  # to find history times in node logs
        self.file = open(path, "w")

    def now(self):
        return time.monotonic_ns() - self.t0

    def add(self, op):
        with self.lock:
            op = dict(op)
            op["index"] = len(self.ops)
            op.setdefault("time", self.now())
            self.ops.append(op)
            self.file.write(json.dumps(op, sort_keys=True) + "\n")
            self.file.flush()
            return op

    def invoke(self, process, f, value=None, **extra):
        return self.add(dict(type="invoke", process=process, f=f,
                             value=value, **extra))

    def complete(self, invocation, type_, value=None, **extra):
        op = {k: v for k, v in invocation.items()
              if k not in ("index", "time", "type")}
        op.update(type=type_, **extra)
        if value is not None:
            op["value"] = value
        return self.add(op)

    def close(self):
        with self.lock:
            self.file.close()


def load(path):
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


# ------------------------------------------------------------------ EDN

KEYWORD_VALUES = {"type", "f"}


def _edn(v, key=None):
    if v is None:
        return "nil"
    if v is True:
        return "true"
    if v is False:
        return "false"
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, str):
        if key in KEYWORD_VALUES or (key == "process" and v == "nemesis"):
            return ":" + v
        return json.dumps(v)  # EDN strings use the same escapes
    if isinstance(v, (list, tuple)):
        return "[" + " ".join(_edn(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{" + ", ".join(":%s %s" % (k.replace("_", "-"), _edn(x, k))
                               for k, x in v.items()) + "}"
    return json.dumps(str(v))


def write_edn(ops, path):
    """One EDN map per line, Jepsen's history.edn layout."""
    with open(path, "w") as f:
        for op in ops:
            f.write(_edn(op) + "\n")
