"""The client side: producers and consumers recording every operation.

Producers enqueue unique integers (value v: body b"v", msg_id b"v-<v>") to
a random queue, or (topic variant) publish them to a topic whose every
subscription must receive them. Consumers pull one message at a time
(`fetch`) from a random queue or subscription and ack it. Each worker is a
thread with its own connection, a "process" in Jepsen's sense; after an
indeterminate (info) operation it continues under a new process number.

Outcome of an enqueue, decided here rather than by the client's built-in
retries (client.py retries TIMEOUT/UNKNOWN_OUTCOME/lost connections and
would hide whether an attempt might have been applied):

  ok    the broker confirmed it (possibly as a duplicate of an earlier
        attempt with the same msg_id: dedup makes retries safe);
  fail  no attempt can have been applied: every answer was NOT_LEADER /
        UNAVAILABLE / a refusal, or the connection could not be opened;
  info  some attempt was sent and its answer never came, or came back
        TIMEOUT / UNKNOWN_OUTCOME, and no later retry got a confirm.

The attempt timeout (how long one attempt, or one connect, may wait for an
answer) is what a client needs to notice a paused or silent node; the
harness sets it to the election timeout, so that a client notices a lost
leader about as soon as the followers do and the availability bound
(availability.py) measures the cluster rather than the client. For the same
reason a producer does not follow a redirect to a node that has just failed
it (followers keep naming a paused leader until their own election timeout
fires) for two attempt timeouts, tries such a node last when it looks for
another one, and retries at least every quarter of an attempt timeout.

At the end `drain` empties every queue with one client (op "drain").
"""
import random
import threading
import time

import raftmq
from raftmq import ConnectionLost, Error
from raftmq.client import pb

# The standing backlog's queue (--backlog): never consumed, only counted.
BACKLOG_QUEUE = "jepsen-backlog"

# Errors saying the request was not acted on: the enqueue may be retried
# and, if nothing else happened, counts as fail.
NOT_DONE = {pb.ERROR_CODE_NOT_LEADER, pb.ERROR_CODE_UNAVAILABLE}
AMBIGUOUS = {pb.ERROR_CODE_TIMEOUT, pb.ERROR_CODE_UNKNOWN_OUTCOME}

DRAIN_PROCESS = 1000000  # Jepsen processes are integers

QUEUE_SETTINGS = dict(max_deliveries=0, ack_timeout_ms=10000)

# Producers retry a publish with the same id for op_timeout at most, so any
# window longer than that dedups every retry. Other runs keep 10 minutes;
# the soak uses 2 minutes (NATS JetStream's default)
# so that the windows are full before its reference window: with 10
# minutes, they filled during it and their growth (2 MiB a node) looked
# like a leak (resources.py).
DEDUP_WINDOW_MS = 600000
SOAK_DEDUP_WINDOW_MS = 120000

TOPIC_SHARE = 0.25  # of the publishes go to the topic


class Workload:
    def __init__(self, cluster, history, rate, producers=3, consumers=3,
                 queues=2, topic=True, seed=0, op_timeout=12.0,
                 dedup_window_ms=DEDUP_WINDOW_MS,
                 attempt_timeout=1.0):
        self.cluster = cluster
        self.history = history
        self.rate = rate
        self.n_producers = producers
        self.n_consumers = consumers
        self.queue_names = ["jq%d" % i for i in range(queues)]
        self.topic = "jt" if topic else None
        self.subscriptions = []  # subscription queue names of the topic
        self.rng = random.Random(seed)
        self.op_timeout = op_timeout
        self.attempt_timeout = attempt_timeout
        self.dedup_window_ms = dedup_window_ms
        self.stop_event = threading.Event()
        self.counter = 0
        self.counter_lock = threading.Lock()
        self.threads = []
        self.errors = []  # unexpected exceptions in workers (harness bugs)

    # --------------------------------------------------------------- setup

    def client(self, timeout=None):
        return raftmq.Client(self.cluster.addresses(),
                             timeout=timeout or self.attempt_timeout,
                             name="jepsen")

    def setup(self, timeout=60.0):
        deadline = time.monotonic() + timeout
        while True:
            try:
                c = self.client(timeout=10.0)
                for q in self.queue_names:
                    c.create_queue(q, dedup_window_ms=self.dedup_window_ms,
                                   **QUEUE_SETTINGS)
                if self.topic:
                    c.create_topic(self.topic,
                                   dedup_window_ms=self.dedup_window_ms)
                    self.subscriptions = [
                        c.subscribe(self.topic, s,
                                    dedup_window_ms=self.dedup_window_ms,
                                    **QUEUE_SETTINGS)
                        for s in ("s1", "s2")]
                c.close()
                return
            except (Error, ConnectionLost):
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.5)

    def fill_backlog(self, n, size=1024, log=print, batch=500):
        """Publishes n messages of `size` bytes into BACKLOG_QUEUE, which
        no worker consumes and the checker does not read: a standing
        backlog, so that snapshots hold a large index and a follower that
        installs one fetches many bodies (issue 14 part 6). Returns the
        seconds it took."""
        t0 = time.monotonic()
        c = self.client(timeout=30.0)
        c.create_queue(BACKLOG_QUEUE)
        body = b"b" * size
        done = 0
        while done < n:
            k = min(batch, n - done)
            ids = [b"backlog-%d" % (done + i) for i in range(k)]
            try:
                res = c.publish_batch(BACKLOG_QUEUE, [body] * k, msg_ids=ids)
            except (Error, ConnectionLost):
                time.sleep(0.2)  # ids make the retry safe
                continue
            bad = [r for r in res if r[0] != 0]
            if bad:
                raise RuntimeError("backlog publish refused: %s" % bad[:3])
            done += k
            if done % 100000 < batch:
                log("backlog: %d of %d" % (done, n))
        c.close()
        return time.monotonic() - t0

    def backlog_depth(self):
        """Messages in BACKLOG_QUEUE (ready), asked of the leader."""
        c = self.client(timeout=30.0)
        try:
            return c.queue_info(BACKLOG_QUEUE).ready
        finally:
            c.close()

    def all_queues(self):
        return self.queue_names + self.subscriptions

    def queue_weights(self):
        """How many of the published messages each of all_queues() gets:
        the consumers pick queues in that proportion. Picked uniformly,
        the plain queues (3/8 of the messages each, with the topic) grew
        by 120 messages a minute while the subscriptions were empty."""
        share = TOPIC_SHARE if self.subscriptions else 0.0
        plain = (1.0 - share) / len(self.queue_names)
        return [plain] * len(self.queue_names) + \
            [share] * len(self.subscriptions)

    # ------------------------------------------------------------- helpers

    def next_value(self):
        with self.counter_lock:
            self.counter += 1
            return self.counter

    def node_of(self, c):
        n = self.cluster.by_address(c.address) if c and c.address else None
        return n.name if n else None

    def connected_to(self, c):
        """The node an operation is about to go to (None: not connected
        yet; the completion then names the node that answered)."""
        return self.node_of(c) if c.sock is not None else None

    def stagger(self, rng):
        # Jepsen's stagger: the whole set of workers together attempts
        # about `rate` operations per second.
        workers = self.n_producers + self.n_consumers
        self.stop_event.wait(rng.uniform(0, 2.0 * workers / self.rate))

    def failover(self, c, failed=None):
        """Drops the connection and rotates the client's address list so
        the next connect starts with the node after this one, and tries
        the nodes in `failed` ({address: until when}) that have failed us
        lately last. The client itself retries UNAVAILABLE on the same
        connection, so a client on a minority node (or one that keeps
        answering the hello but has no leader) would stay there for the
        whole timeout; and a paused node costs a whole attempt timeout
        each time it is tried."""
        order = list(c.addresses)
        if c.address in order:
            i = order.index(c.address)
            order = order[i + 1:] + order[:i + 1]
        if failed:
            now = time.monotonic()
            bad = [a for a in order if failed.get(a, 0) > now]
            order = [a for a in order if a not in bad] + bad
        c.addresses = order
        c._next = 0  # the client's rotation index, into the new order
        c.close()

    def connect(self, c, deadline):
        """Opens the connection if needed; False if no node answered
        (nothing was sent)."""
        if c.sock is not None:
            return True
        try:
            c._connect_any(min(deadline,
                               time.monotonic() + self.attempt_timeout))
            return True
        except (ConnectionLost, Error, OSError):
            # A connect whose Hello got no answer leaves its socket in the
            # client: never send a request on it.
            c.close()
            return False

    # ------------------------------------------------------------ enqueue

    def enqueue(self, c, value, queue=None, topic=None):
        """Publishes value until confirmed or op_timeout; returns
        (type, error)."""
        p = pb.Publish(msg_id=b"v-%d" % value, body=b"%d" % value)
        if topic:
            p.topic = topic
        else:
            p.queue = queue
        deadline = time.monotonic() + self.op_timeout
        maybe_sent, last = False, None
        delay, most = 0.05, self.attempt_timeout / 4
        failed = {}  # address -> until when its redirects are not followed

        def suspect(address):
            failed[address] = time.monotonic() + 2 * self.attempt_timeout

        while time.monotonic() < deadline:
            if not self.connect(c, deadline):
                last = "no node reachable"
                time.sleep(delay)
                delay = min(delay * 2, most)
                continue
            left = deadline - time.monotonic()
            try:
                r = c.call(publish=p, retry=False,
                           timeout=max(0.1, min(left, self.attempt_timeout)))
                return "ok", {"seq": r.seq, "duplicate": r.duplicate}
            except ConnectionLost as e:
                # Sent (or half sent) and no answer: may be applied.
                maybe_sent, last = True, "connection: %s" % e
                suspect(c.address)
                self.failover(c, failed)
                continue
            except Error as e:
                last = pb.ErrorCode.Name(e.code)
                if e.code in AMBIGUOUS:
                    maybe_sent = True
                    self.failover(c, failed)
                elif e.code == pb.ERROR_CODE_NOT_LEADER and e.leader and \
                        failed.get(e.leader, 0) <= time.monotonic():
                    try:
                        c._connect_any(
                            min(deadline,
                                time.monotonic() + self.attempt_timeout),
                            prefer=e.leader)
                    except ConnectionLost:
                        suspect(e.leader)
                        c.close()
                    continue
                elif e.code in NOT_DONE:
                    # No leader known here (or only one that has just
                    # failed us): maybe this node is the one cut off; ask
                    # another.
                    self.failover(c, failed)
                else:
                    # A refusal (queue full, memory alarm...): not applied.
                    break
            time.sleep(delay)
            delay = min(delay * 2, most)
        return ("info" if maybe_sent else "fail"), {"error": last}

    def lazy_client(self):
        """A client, retried until one node answers (the cluster may be
        down when a worker starts over); ops reconnect through connect()."""
        while not self.stop_event.is_set():
            try:
                return self.client()
            except (ConnectionLost, Error, OSError):
                self.stop_event.wait(0.5)
        raise InterruptedError("stopping")

    def guarded(self, body, name):
        """Runs a worker loop; an unexpected exception (a harness or client
        bug) is logged and the worker goes on as a new process instead of
        dying silently."""
        while not self.stop_event.is_set():
            try:
                body()
                return
            except Exception as e:  # noqa: BLE001
                if self.stop_event.is_set():
                    return
                self.errors.append("%s: %s: %s" % (name, type(e).__name__, e))
                time.sleep(0.5)

    def producer(self, idx, seed):
        rng = random.Random(seed)
        state = {"process": idx}
        self.guarded(lambda: self.produce(rng, state), "producer-%d" % idx)

    def produce(self, rng, state):
        stride = self.n_producers + self.n_consumers
        c = self.lazy_client()
        while not self.stop_event.is_set():
            self.stagger(rng)
            if self.stop_event.is_set():
                break
            process = state["process"]
            # A new process number up front: if this op dies with an
            # exception its invocation stays open (info) and the next op
            # must not reuse the process.
            state["process"] += stride
            value = self.next_value()
            if self.topic and rng.random() < TOPIC_SHARE:
                extra = dict(topic=self.topic, queues=self.subscriptions)
                inv = self.history.invoke(process, "enqueue", value,
                                          node=self.connected_to(c), **extra)
                kind, info = self.enqueue(c, value, topic=self.topic)
            else:
                q = rng.choice(self.queue_names)
                inv = self.history.invoke(process, "enqueue", value,
                                          queue=q, queues=[q],
                                          node=self.connected_to(c))
                kind, info = self.enqueue(c, value, queue=q)
            self.history.complete(inv, kind, node=self.node_of(c), **info)
            if kind == "info":
                c.close()
            else:
                state["process"] = process

    # ------------------------------------------------------------ dequeue

    def dequeue(self, c, process, queue):
        inv = self.history.invoke(process, "dequeue", None, queue=queue,
                                  node=self.connected_to(c))
        deadline = time.monotonic() + self.op_timeout
        if not self.connect(c, deadline):
            self.history.complete(inv, "fail", error="no node reachable")
            return "fail"
        try:
            cid, ds = c.fetch(queue, max_messages=1, wait_ms=200)
        except ConnectionLost as e:
            self.history.complete(inv, "info", node=self.node_of(c),
                                  error="connection: %s" % e)
            self.failover(c)
            return "info"
        except Error as e:
            kind = "fail" if e.code in NOT_DONE else "info"
            self.history.complete(inv, kind, node=self.node_of(c),
                                  error=pb.ErrorCode.Name(e.code))
            self.failover(c)
            return kind
        node = self.node_of(c)
        if not ds:
            self.history.complete(inv, "fail", node=node, error="empty")
            return "fail"
        d = ds[0]
        self.history.complete(inv, "ok", value=parse_value(d.body), node=node,
                              tag=d.tag, delivery_count=d.delivery_count,
                              consumer=cid)
        # An ack whose outcome is unknown "crashes" the process too.
        return self.ack(c, process, queue, cid, [d.tag],
                        [parse_value(d.body)])

    def ack(self, c, process, queue, cid, tags, values):
        inv = self.history.invoke(process, "ack", values, queue=queue,
                                  tags=tags, consumer=cid)
        try:
            done, unknown = c.ack(cid, tags)
            kind = "ok" if done == len(tags) else "fail"
            self.history.complete(inv, kind, node=self.node_of(c), done=done,
                                  unknown=unknown)
            return kind
        except (ConnectionLost, Error) as e:
            # An ack that did not happen only means a redelivery later.
            self.history.complete(inv, "info", node=self.node_of(c),
                                  error=str(e))
            c.close()
            return "info"

    def consumer(self, idx, seed):
        rng = random.Random(seed)
        state = {"process": self.n_producers + idx}
        self.guarded(lambda: self.consume(rng, state), "consumer-%d" % idx)

    def consume(self, rng, state):
        stride = self.n_producers + self.n_consumers
        c = self.lazy_client()
        while not self.stop_event.is_set():
            self.stagger(rng)
            if self.stop_event.is_set():
                break
            process = state["process"]
            state["process"] += stride
            queue = rng.choices(self.all_queues(), self.queue_weights())[0]
            if self.dequeue(c, process, queue) \
                    != "info":
                state["process"] = process
        c.close()

    # -------------------------------------------------------------- phases

    def start(self):
        for i in range(self.n_producers):
            self.threads.append(threading.Thread(
                target=self.producer, args=(i, self.rng.random()),
                name="producer-%d" % i, daemon=True))
        for i in range(self.n_consumers):
            self.threads.append(threading.Thread(
                target=self.consumer, args=(i, self.rng.random()),
                name="consumer-%d" % i, daemon=True))
        for t in self.threads:
            t.start()

    def stop(self, timeout=60.0):
        """Stops the workers; returns the names of threads still stuck."""
        self.stop_event.set()
        deadline = time.monotonic() + timeout
        for t in self.threads:
            t.join(max(0.1, deadline - time.monotonic()))
        return [t.name for t in self.threads if t.is_alive()]

    def drain(self, timeout=180.0, log=print):
        """Empties every queue: fetch in batches and ack until the queue
        reports nothing ready, held or delayed. Returns {queue: leftover}
        for queues it could not empty in time (empty dict = all drained)."""
        process = DRAIN_PROCESS
        left = {}
        deadline = time.monotonic() + timeout
        c = self.client(timeout=10.0)
        # Passes until one finds nothing: a message released late (a stale
        # consumer's) may come back to a queue already drained, and an
        # empty queue_info is only the leader's view at that moment.
        queues = self.all_queues() * 3
        got = {q: 0 for q in self.all_queues()}
        for i, q in enumerate(queues):
            if i and i % len(self.all_queues()) == 0 and not any(
                    got.values()):
                break
            if i % len(self.all_queues()) == 0:
                got = {x: 0 for x in got}
            while True:
                if time.monotonic() > deadline:
                    left[q] = "timeout"
                    break
                inv = self.history.invoke(process, "drain", None, queue=q)
                try:
                    cid, ds = c.fetch(q, max_messages=200, wait_ms=300)
                except (ConnectionLost, Error) as e:
                    self.history.complete(inv, "info", node=self.node_of(c),
                                          error=str(e))
                    self.failover(c)
                    time.sleep(0.5)
                    continue
                vals = [parse_value(d.body) for d in ds]
                self.history.complete(
                    inv, "ok" if ds else "fail", value=vals,
                    node=self.node_of(c), consumer=cid,
                    tags=[d.tag for d in ds],
                    delivery_counts=[d.delivery_count for d in ds])
                if ds:
                    got[q] += len(ds)
                    self.ack(c, process, q, cid, [d.tag for d in ds], vals)
                    continue
                try:
                    st = c.queue_info(q)
                except (ConnectionLost, Error) as e:
                    log("drain: queue_info %s: %s" % (q, e))
                    self.failover(c)
                    time.sleep(0.5)
                    continue
                if st.ready + st.unacked + st.delayed == 0:
                    break
                time.sleep(0.3)
        c.close()
        return left


def parse_value(body):
    try:
        return int(body)
    except ValueError:
        return body.decode(errors="replace")
