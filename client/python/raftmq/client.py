"""The raftmq client: connection, framing, redirects, retries."""
import collections
import importlib
import os
import select
import socket
import ssl
import struct
import subprocess
import sys
import tempfile
import time
import uuid

from . import names


def load_proto():
    """Imports client_pb2, generating it with protoc if it is not on the path.

    The build puts a generated client_pb2.py next to this package (meson
    target 'python-proto'); when running from a source tree without it, the
    module is generated once into a cache directory from proto/client.proto.
    """
    try:
        return importlib.import_module("client_pb2")
    except ImportError:
        pass
    here = os.path.dirname(os.path.abspath(__file__))
    proto_dir = os.environ.get("RAFTMQ_PROTO_DIR",
                               os.path.join(here, "..", "..", "..", "proto"))
    proto = os.path.join(proto_dir, "client.proto")
    if not os.path.exists(proto):
        raise ImportError("client_pb2 not found and no %s to generate it "
                          "from (set RAFTMQ_PROTO_DIR)" % proto)
    cache = os.path.join(tempfile.gettempdir(),
                         "raftmq-py-%d" % os.getuid())
    os.makedirs(cache, exist_ok=True)
    out = os.path.join(cache, "client_pb2.py")
    if (not os.path.exists(out) or
            os.path.getmtime(out) < os.path.getmtime(proto)):
        # Generate aside and rename, so concurrent imports never see a
        # half-written module.
        tmp = tempfile.mkdtemp(dir=cache)
        subprocess.run(["protoc", "--proto_path=" + proto_dir,
                        "--python_out=" + tmp, proto], check=True)
        os.replace(os.path.join(tmp, "client_pb2.py"), out)
        os.rmdir(tmp)
    sys.path.insert(0, cache)
    return importlib.import_module("client_pb2")


pb = load_proto()

# Codes that mean "try again" for a request whose outcome is safe to retry.
_RETRY = {pb.ERROR_CODE_NOT_LEADER, pb.ERROR_CODE_UNAVAILABLE,
          pb.ERROR_CODE_UNKNOWN_OUTCOME, pb.ERROR_CODE_TIMEOUT}
# Codes that mean the request was not acted on at all: safe for anything.
_REDIRECT = {pb.ERROR_CODE_NOT_LEADER, pb.ERROR_CODE_UNAVAILABLE}
# Hello refusals that another node would repeat: connecting stops at once.
_FATAL = {pb.ERROR_CODE_UNAUTHENTICATED, pb.ERROR_CODE_PERMISSION_DENIED,
          pb.ERROR_CODE_UNSUPPORTED_VERSION}
# The highest protocol version spoken (Hello). Frames are written in version
# 1 unless their body needs more (a Peek: 2, a FetchBodies: 3), so that
# older servers keep serving everything else.
PROTOCOL_VERSION = 3
_FRAME_VERSION = {"peek": 2, "fetch_bodies": 3}
# The longest close() waits for the answers to its goodbye (seconds).
CLOSE_WAIT = 2.0


class Error(Exception):
    """An error answered by the broker: .code (pb.ErrorCode) and .message."""

    def __init__(self, code, message, leader=""):
        super().__init__("%s: %s" % (pb.ErrorCode.Name(code), message))
        self.code = code
        self.message = message
        self.leader = leader


class ConnectionLost(Exception):
    """The connection broke and could not be re-established in time."""


class TLSError(ConnectionLost):
    """The TLS handshake failed in a way another node would repeat: the
    node's certificate is not trusted, or the node does not speak TLS."""


Delivery = collections.namedtuple(
    "Delivery", "consumer_id queue tag msg_id body delivery_count "
    "redelivered published_ms dead_letter_reason dead_letter_queue")


def _delivery(d):
    return Delivery(d.consumer_id, d.queue, d.tag, d.msg_id, d.body,
                    d.delivery_count, d.redelivered, d.published_ms,
                    d.dead_letter_reason, d.dead_letter_queue)


# A message seen by Client.peek(): the Delivery fields (tag is the seq,
# consumer_id the consumer holding it or 0, delivery_count the deliveries so
# far, redelivered = delivery_count > 0), its state ("ready", "delayed",
# "held") and due_ms (delayed: deliverable at; held: ack deadline; 0 = none).
Peeked = collections.namedtuple("Peeked", Delivery._fields +
                                ("state", "due_ms"))

_STATES = {pb.MESSAGE_STATE_READY: "ready",
           pb.MESSAGE_STATE_DELAYED: "delayed",
           pb.MESSAGE_STATE_HELD: "held"}


class Client:
    """A blocking connection to a raftmq cluster (one thread at a time).

    Authentication and TLS (docs/operations.md): `token` is sent in Hello
    (nodes with auth = on require it). With tls=True the connection uses
    TLS and verifies the node's certificate against `tls_ca` (a PEM file),
    else the system's CAs, and its name against `server_hostname`, else the
    host of each address. `ssl_context` (an ssl.SSLContext) replaces all of
    that (client certificates, pinning...) and implies tls=True. A refused
    token, a plain client on a TLS port and an untrusted certificate raise
    at once instead of being retried.

    Failed deliveries: a queue's max_deliveries counts nacks, ack timeouts
    and connections that end while their consumers hold messages without a
    goodbye (the process crashed or was killed). cancel() and close() (also
    at the end of a `with` block) say goodbye: nothing the consumer holds
    counts as failed, and the deliveries received but never returned by
    next_delivery() are released as never delivered. An application that
    gives up on a message should nack() it: closing does not count it.
    """

    def __init__(self, addresses, timeout=10.0, name="raftmq-python",
                 token="", tls=False, tls_ca=None, ssl_context=None,
                 server_hostname=None):
        if isinstance(addresses, str):
            addresses = [a for a in addresses.split(",") if a]
        if not addresses:
            raise ValueError("no cluster address given")
        self.addresses = list(addresses)
        self._next = 0  # the address _connect_any tries first
        self.timeout = timeout
        self.name = name
        self.token = token or ""
        if ssl_context is None and (tls or tls_ca):
            ssl_context = ssl.create_default_context(cafile=tls_ca)
        self.ssl_context = ssl_context
        self.server_hostname = server_hostname
        self.sock = None
        self.buf = b""
        self.corr = 0
        self.node_id = 0
        self.address = None
        self.deliveries = collections.deque()
        self._consumers = set()  # push consumers of this connection
        self._pulls = set()      # pull consumers (fetch) of this connection
        self.gone = []       # ConsumerGone pushes
        self.errors = []     # Error pushes not tied to a request
        self._id_prefix = uuid.uuid4().hex[:8]
        self._id_counter = 0
        self._connect_any(time.monotonic() + timeout)

    # ------------------------------------------------------------ plumbing

    def close(self):
        """Says goodbye and closes the connection.

        The goodbye cancels every consumer of this connection (see
        cancel(): nothing they hold counts as a failed delivery, and the
        deliveries received but never returned by next_delivery() are
        released as never delivered) and waits for the answers, up to
        CLOSE_WAIT seconds (less if the client's timeout is shorter). A
        connection that ends without it (the process dies) makes the broker
        count what its consumers held as failed deliveries. The client
        stays usable: the next call connects again.
        """
        if self.sock is None:
            return
        try:
            self._goodbye(time.monotonic() + min(self.timeout, CLOSE_WAIT))
        except (OSError, EOFError, TimeoutError):
            pass  # a broken connection: the broker counts as for a crash
        finally:
            self._drop()

    def _drop(self):
        """Closes the socket without a goodbye; its consumers are gone."""
        if self.sock is not None:
            self.sock.close()
            self.sock = None
        self._consumers.clear()
        self._pulls.clear()

    def _goodbye(self, deadline):
        self._read_ready()
        waiting = set()
        for cid in sorted(self._consumers):
            unseen = [d.tag for d in self.deliveries if d.consumer_id == cid]
            waiting.add(self._send(cancel=pb.Cancel(consumer_id=cid,
                                                    unseen_tags=unseen)))
        for cid in sorted(self._pulls - self._consumers):
            waiting.add(self._send(cancel=pb.Cancel(consumer_id=cid)))
        self._consumers.clear()
        self._pulls.clear()
        self.deliveries.clear()
        while waiting:
            env = self._recv(deadline)
            if env.WhichOneof("body") not in ("delivery", "consumer_gone"):
                waiting.discard(env.correlation_id)

    def _readable(self):
        """Whether a frame, or bytes, can be read without waiting."""
        if len(self.buf) >= 4 and \
                len(self.buf) >= 4 + struct.unpack(">I", self.buf[:4])[0]:
            return True
        if isinstance(self.sock, ssl.SSLSocket) and self.sock.pending():
            return True
        return bool(select.select([self.sock], [], [], 0)[0])

    def _read_ready(self):
        """Keeps the frames that have already arrived, without waiting
        (beyond a few ms for the rest of a frame that is half here)."""
        try:
            while self.sock is not None and self._readable():
                self._keep(self._recv(time.monotonic() + 0.05))
        except TimeoutError:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def _open(self, address, deadline):
        host, port = address.rsplit(":", 1)
        # One unresponsive node (paused, partitioned) must not use up the
        # whole deadline: give each address a couple of seconds at most.
        deadline = min(deadline, time.monotonic() + 2.0)
        left = max(0.05, deadline - time.monotonic())
        s = socket.create_connection((host, int(port)), timeout=left)
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if self.ssl_context is not None:
            host = host.strip("[]")
            try:
                s = self.ssl_context.wrap_socket(
                    s, server_hostname=self.server_hostname or host)
            except ssl.SSLError as e:
                s.close()
                if isinstance(e, ssl.SSLCertVerificationError):
                    raise TLSError("TLS handshake with %s failed: %s" %
                                   (address, e.verify_message or e))
                if "WRONG_VERSION_NUMBER" in str(e):
                    raise TLSError("TLS handshake with %s failed: the node "
                                   "does not speak TLS on this port (is "
                                   "tls_cert set?)" % address)
                raise
        self._drop()
        self.sock = s
        self.buf = b""
        self.address = address
        e = self._roundtrip(deadline, hello=pb.Hello(
            client_name=self.name, protocol_version=PROTOCOL_VERSION,
            auth_token=self.token))
        if e.WhichOneof("body") == "error":
            raise Error(e.error.code, e.error.message)
        self.node_id = e.hello_result.node_id
        return e.hello_result

    def _rotation(self):
        """The addresses, starting after the one used last: a node that
        is cut off (answers UNAVAILABLE) or removed from the cluster must
        not be the first one tried again."""
        n = len(self.addresses)
        return [self.addresses[(self._next + i) % n] for i in range(n)]

    def _connect_any(self, deadline, prefer=None):
        order = ([prefer] if prefer else []) + self._rotation()
        last = None
        delay = 0.05
        while True:
            for a in order:
                if a != prefer:
                    self._next = (self.addresses.index(a) + 1) % \
                        len(self.addresses)
                try:
                    self._open(a, deadline)
                    return
                except TLSError:
                    raise
                except Error as e:
                    if e.code in _FATAL:
                        raise
                    last = e
                except (OSError, EOFError, ConnectionLost) as e:
                    last = e
                if time.monotonic() >= deadline:
                    break
            if time.monotonic() >= deadline:
                raise ConnectionLost("cannot reach any of %s: %s" %
                                     (",".join(self.addresses), last))
            time.sleep(delay)
            delay = min(delay * 2, 0.5)
            prefer = None
            order = self._rotation()

    def _send(self, **body):
        self.corr += 1
        version = max([_FRAME_VERSION.get(k, 1) for k in body] + [1])
        env = pb.Envelope(version=version, correlation_id=self.corr, **body)
        data = env.SerializeToString()
        try:
            self.sock.sendall(struct.pack(">I", len(data)) + data)
        except OSError as e:
            raise EOFError(str(e))
        return self.corr

    def _recv(self, deadline):
        while True:
            if len(self.buf) >= 4:
                (n,) = struct.unpack(">I", self.buf[:4])
                if len(self.buf) >= 4 + n:
                    env = pb.Envelope()
                    env.ParseFromString(self.buf[4:4 + n])
                    self.buf = self.buf[4 + n:]
                    return env
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("no answer from %s" % self.address)
            self.sock.settimeout(left)
            try:
                data = self.sock.recv(1 << 16)
            except socket.timeout:
                raise TimeoutError("no answer from %s" % self.address)
            except OSError as e:
                raise EOFError(str(e))
            if not data:
                raise EOFError("connection closed by %s" % self.address)
            self.buf += data

    def _keep(self, env):
        kind = env.WhichOneof("body")
        if kind == "delivery":
            self.deliveries.append(_delivery(env.delivery))
        elif kind == "consumer_gone":
            self.gone.append(env.consumer_gone)
        elif kind == "error":
            self.errors.append(env.error)

    def _roundtrip(self, deadline, **body):
        corr = self._send(**body)
        while True:
            env = self._recv(deadline)
            if "hello" in body and env.correlation_id == 0 and \
                    env.WhichOneof("body") == "error":
                # Refused before Hello was read (TLS required, too many
                # connections): the connection closes.
                return env
            if env.correlation_id == corr and \
                    env.WhichOneof("body") not in ("delivery",
                                                   "consumer_gone"):
                return env
            self._keep(env)

    def call(self, retry=True, timeout=None, **body):
        """Sends one request; returns the result message or raises Error.

        With retry=True (the default), NOT_LEADER redirects, UNAVAILABLE,
        UNKNOWN_OUTCOME and broken connections are retried until the
        timeout: only for requests that are safe to repeat. With
        retry="redirect", only answers saying nothing was done (NOT_LEADER,
        UNAVAILABLE) are retried; with retry=False nothing is.
        """
        codes = _RETRY if retry is True else \
            _REDIRECT if retry == "redirect" else set()
        deadline = time.monotonic() + (timeout or self.timeout)
        delay = 0.05
        while True:
            try:
                if self.sock is None:
                    self._connect_any(deadline)
                env = self._roundtrip(deadline, **body)
            except (EOFError, OSError, TimeoutError) as e:
                self._drop()
                if retry is not True or time.monotonic() >= deadline:
                    raise ConnectionLost(str(e))
                continue
            if env.WhichOneof("body") != "error":
                return getattr(env, env.WhichOneof("body"))
            err = env.error
            if err.code not in codes or time.monotonic() >= deadline:
                raise Error(err.code, err.message,
                            err.leader_client_address)
            if err.code == pb.ERROR_CODE_NOT_LEADER and \
                    err.leader_client_address:
                try:
                    self._connect_any(deadline,
                                      prefer=err.leader_client_address)
                except ConnectionLost:
                    pass
                continue
            if err.code in (pb.ERROR_CODE_NOT_LEADER,
                            pb.ERROR_CODE_UNAVAILABLE):
                # This node knows no leader: it may be cut off from the
                # majority or removed from the cluster. Ask the next one.
                self._drop()
            time.sleep(delay)
            delay = min(delay * 2, 0.5)

    def new_msg_id(self):
        self._id_counter += 1
        return ("%s-%d" % (self._id_prefix, self._id_counter)).encode()

    # ----------------------------------------------------------------- api

    def publish(self, queue=None, body=b"", msg_id=None, topic=None,
                delay_ms=0, ttl_ms=0, timeout=None):
        """Publishes one message and waits for its confirm: (seq, dup).

        Every publish carries a message id (one is made up if not given)
        and retries reuse it, so a retry after a failover is deduplicated.
        """
        if msg_id is None:
            msg_id = self.new_msg_id()
        if isinstance(msg_id, str):
            msg_id = msg_id.encode()
        if isinstance(body, str):
            body = body.encode()
        p = pb.Publish(msg_id=msg_id, body=body, delay_ms=delay_ms,
                       ttl_ms=ttl_ms)
        if topic is not None:
            p.topic = topic
        else:
            p.queue = queue
        r = self.call(publish=p, timeout=timeout)
        return r.seq, r.duplicate

    def publish_batch(self, queue, bodies, msg_ids=None, timeout=None):
        """Publishes several messages in one request: [(code, seq, dup)]."""
        if msg_ids is None:
            msg_ids = [self.new_msg_id() for _ in bodies]
        items = [pb.Publish(queue=queue, body=b, msg_id=i)
                 for b, i in zip(bodies, msg_ids)]
        r = self.call(publish_batch=pb.PublishBatch(items=items),
                      timeout=timeout)
        return [(x.code, x.seq, x.duplicate) for x in r.results]

    @staticmethod
    def _settings(**kw):
        s = pb.QueueSettings()
        names = {"dead_letter": "dead_letter_queue"}
        for k, v in kw.items():
            if v is None:
                continue
            if k == "overflow" and isinstance(v, str):
                v = {"reject-publish": pb.OVERFLOW_REJECT_PUBLISH,
                     "drop-head": pb.OVERFLOW_DROP_HEAD}[v]
            setattr(s, names.get(k, k), v)
        return s

    @staticmethod
    def _new_name(what, name):
        why = names.name_problem(name)
        if why:
            raise Error(pb.ERROR_CODE_INVALID_ARGUMENT, "%s %s: invalid "
                        "name: %s" % (what, names.quote(name), why))

    def create_queue(self, name, **settings):
        self._new_name("queue", name)
        self.call(create_queue=pb.CreateQueue(
            name=name, settings=self._settings(**settings)))

    def configure_queue(self, name, **settings):
        self.call(configure_queue=pb.ConfigureQueue(
            name=name, settings=self._settings(**settings)))

    def delete_queue(self, name):
        self.call(delete_queue=pb.DeleteQueue(name=name))

    def purge_queue(self, name):
        return self.call(purge_queue=pb.PurgeQueue(name=name)).purged

    def create_topic(self, name, dedup_window_ms=None):
        self._new_name("topic", name)
        t = pb.CreateTopic(name=name)
        if dedup_window_ms is not None:
            t.dedup_window_ms = dedup_window_ms
        self.call(create_topic=t)

    def delete_topic(self, name):
        self.call(delete_topic=pb.DeleteTopic(name=name))

    def subscribe(self, topic, subscription, **settings):
        self._new_name("subscription", subscription)
        return self.call(subscribe=pb.Subscribe(
            topic=topic, subscription=subscription,
            settings=self._settings(**settings))).queue

    def unsubscribe(self, topic, subscription):
        self.call(unsubscribe=pb.Unsubscribe(topic=topic,
                                             subscription=subscription))

    def queue_info(self, name):
        return self.call(queue_info=pb.QueueInfo(name=name)).queue

    def queue_list(self):
        return list(self.call(queue_list=pb.QueueList()).queues)

    def topic_list(self):
        return list(self.call(topic_list=pb.TopicList()).topics)

    def cluster_status(self):
        """This node's view of the cluster (any node answers). A node's
        reachable_unknown is set when the answering node cannot tell (a
        follower does not see the other followers)."""
        return self.call(cluster_status=pb.ClusterStatus(), retry="redirect")

    def cluster_add(self, node_id, raft_address, client_address, role=0):
        self.call(cluster_add=pb.ClusterAdd(
            id=node_id, raft_address=raft_address,
            client_address=client_address, role=role), retry="redirect")

    def cluster_remove(self, node_id):
        self.call(cluster_remove=pb.ClusterRemove(id=node_id), retry="redirect")

    def cluster_transfer(self, node_id=0):
        self.call(cluster_transfer=pb.ClusterTransfer(id=node_id),
                  retry="redirect")

    # ----------------------------------------------------------- consuming

    def consume(self, queue, prefetch=100, credit=None):
        """Attaches a push consumer; returns its id. Deliveries are read
        with next_delivery(). The consumer lives as long as the
        connection: after a reconnect, consume again. The broker pushes up
        to `prefetch` messages ahead; those not yet returned by
        next_delivery() when the consumer is cancelled or the client closed
        go back as never delivered (see cancel())."""
        c = pb.Consume(queue=queue, prefetch=prefetch)
        if credit is not None:
            c.credit = credit
        cid = self.call(consume=c, retry="redirect").consumer_id
        self._consumers.add(cid)
        return cid

    def next_delivery(self, timeout=2.0):
        """The next pushed delivery, or None after `timeout` seconds."""
        if self.deliveries:
            return self.deliveries.popleft()
        deadline = time.monotonic() + timeout
        while not self.deliveries:
            try:
                self._keep(self._recv(deadline))
            except TimeoutError:
                return None
            except (EOFError, OSError) as e:
                self._drop()
                raise ConnectionLost(str(e))
        return self.deliveries.popleft()

    def fetch(self, queue, max_messages=1, wait_ms=0):
        """Pulls up to max_messages (waiting up to wait_ms for them)."""
        r = self.call(fetch=pb.Fetch(queue=queue, max_messages=max_messages,
                                     wait_ms=wait_ms), retry="redirect",
                      timeout=self.timeout + wait_ms / 1000.0)
        self._pulls.add(r.consumer_id)
        return r.consumer_id, [_delivery(d) for d in r.deliveries]

    def peek(self, queue, max_messages=100, from_seq=0, delayed=False,
             held=False):
        """Looks at messages of `queue` without taking them.

        No delivery is made or counted and nothing is held, so peeking
        never moves a message towards max_deliveries (consuming without
        acks does). Returns (messages, next_seq): Peeked tuples in seq
        order from `from_seq` (ready ones, plus delayed and held ones if
        asked), at most max_messages (the broker returns at most 1000 per
        call, and no more than fit in one frame), and the from_seq of the
        next page, 0 when no more follow. The leader answers after a read
        barrier. Needs the consume permission on the queue.
        """
        r = self.call(peek=pb.Peek(queue=queue, from_seq=from_seq,
                                   max_messages=max_messages,
                                   include_delayed=delayed,
                                   include_held=held))
        return ([Peeked(*_delivery(m.message), _STATES.get(m.state, "ready"),
                        m.due_ms) for m in r.messages], r.next_seq)

    def fetch_bodies(self, keys, max_bytes=0):
        """Reads message bodies from the body store of the node this
        client is connected to (any node answers from its own store, no
        redirect). Returns the BodyRecord messages (key, msg_id, body,
        sum) of the keys the node has, in the order asked; it stops
        before max_bytes (0 = the node's cap) with at least one record
        when the node has any. Needs admin when auth is on."""
        r = self.call(fetch_bodies=pb.FetchBodies(keys=list(keys),
                                                  max_bytes=max_bytes))
        return list(r.records)

    def _tags(self, kind, msg):
        r = self.call(retry="redirect", **{kind: msg})
        return r.done, r.unknown

    def ack(self, consumer_id, tags):
        return self._tags("ack", pb.Ack(consumer_id=consumer_id, tags=tags))

    def nack(self, consumer_id, tags, delay_ms=0):
        return self._tags("nack", pb.Nack(consumer_id=consumer_id,
                                          tags=tags, delay_ms=delay_ms))

    def release(self, consumer_id, tags):
        return self._tags("release", pb.Release(consumer_id=consumer_id,
                                                tags=tags))

    def extend(self, consumer_id, tags, ms=0):
        return self._tags("extend", pb.Extend(consumer_id=consumer_id,
                                              tags=tags, ms=ms))

    def cancel(self, consumer_id):
        """Detaches a consumer of this connection.

        Its unacked messages return to the queue without counting a failed
        delivery. Its deliveries received but not yet returned by
        next_delivery() are dropped here and named in the Cancel: they go
        back as never delivered (the next consumer gets them with the
        delivery_count they had before; one still in flight when the
        broker applies the Cancel comes back counted as delivered, never as
        failed).
        """
        if self.sock is not None:
            try:
                self._read_ready()
            except (OSError, EOFError):
                self._drop()  # its session, and the consumer, are gone
        unseen = [d.tag for d in self.deliveries
                  if d.consumer_id == consumer_id]
        self._drop_deliveries(consumer_id)
        self._consumers.discard(consumer_id)
        self._pulls.discard(consumer_id)
        self.call(cancel=pb.Cancel(consumer_id=consumer_id,
                                   unseen_tags=unseen), retry="redirect")
        self._drop_deliveries(consumer_id)  # any that came meanwhile

    def _drop_deliveries(self, consumer_id):
        self.deliveries = collections.deque(
            d for d in self.deliveries if d.consumer_id != consumer_id)
