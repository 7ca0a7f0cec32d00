"""The client protocol by hand, for tests that need exact control of a
connection (what is sent, and when): one frame at a time, plain or TLS."""
import socket
import ssl
import struct

from raftmq import pb


def send(s, corr, **body):
    """Writes one Envelope with `body` (e.g. hello=pb.Hello(...))."""
    data = pb.Envelope(version=1, correlation_id=corr,
                       **body).SerializeToString()
    s.sendall(struct.pack(">I", len(data)) + data)


def recv(s):
    """The next Envelope, or None when the peer closed the connection."""
    buf = b""
    while len(buf) < 4 or len(buf) < 4 + struct.unpack(">I", buf[:4])[0]:
        try:
            chunk = s.recv(65536)
        except (ConnectionResetError, ssl.SSLError):
            return None
        if not chunk:
            return None
        buf += chunk
    env = pb.Envelope()
    env.ParseFromString(buf[4:])
    return env


def raw_tls(cluster, node):
    """A TLS connection to node's client port, trusting the CA of a
    raftmq_secure cluster."""
    ctx = ssl.create_default_context(cafile=cluster.files["ca"])
    s = socket.create_connection(("127.0.0.1", node.client_port), timeout=5)
    return ctx.wrap_socket(s, server_hostname="127.0.0.1")
