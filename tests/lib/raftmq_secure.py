"""Clusters with authentication and TLS for the tests (docs/operations.md,
"Authentication and TLS").

secure_files(dir) makes, at test time, a self-signed CA, a node certificate
signed by it for 127.0.0.1/localhost, a client certificate, and token files;
secure_cluster(...) writes a raftmqd config with auth = on, TLS and users
alice, bob and admin, and returns a raftmq_cluster.Cluster that passes it to
every node with --config.
"""
import hashlib
import os
import subprocess

from raftmq_cluster import Cluster

TOKENS = {
    "alice": "alice-7f3a9c1e5b2d",   # token_file
    "bob": "bob-0c4e8a2f6d1b",       # token_sha256
    "admin": "admin-9d2b7e4c1a3f",   # token_sha256, admin = true
}


def _openssl(*args, cwd):
    subprocess.run(["openssl"] + list(args), cwd=cwd, check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def secure_files(d):
    """CA, node and client certificates and token files in directory d.
    Returns a dict of paths."""
    os.makedirs(d, exist_ok=True)
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
             "-keyout", "ca.key", "-out", "ca.pem", "-subj", "/CN=raftmq test CA",
             cwd=d)
    with open(os.path.join(d, "san.ext"), "w") as f:
        f.write("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    for name, ext in (("node", ["-extfile", "san.ext"]), ("client", [])):
        _openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout",
                 name + ".key", "-out", name + ".csr", "-subj",
                 "/CN=raftmq test " + name, cwd=d)
        _openssl("x509", "-req", "-in", name + ".csr", "-CA", "ca.pem",
                 "-CAkey", "ca.key", "-CAcreateserial", "-days", "2",
                 "-out", name + ".pem", *ext, cwd=d)
    # A certificate the nodes' clients do not trust.
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
             "-keyout", "other.key", "-out", "other.pem", "-subj",
             "/CN=other CA", cwd=d)
    tok = os.path.join(d, "alice.token")
    with open(tok, "w") as f:
        f.write(TOKENS["alice"] + "\n")
    os.chmod(tok, 0o600)
    return {k: os.path.join(d, v) for k, v in (
        ("ca", "ca.pem"), ("cert", "node.pem"), ("key", "node.key"),
        ("client_cert", "client.pem"), ("client_key", "client.key"),
        ("other_ca", "other.pem"), ("alice_token", "alice.token"))}


def sha256(token):
    return hashlib.sha256(token.encode()).hexdigest()


def secure_config(files, client_certs=False, tls=True):
    """The text of a raftmqd config file with auth (and TLS) on."""
    return """\
[node]
auth = on
{tls}
{tls_ca}

; producers/consumers of orders.* and logs.*, may create orders.* queues
[user.alice]
token_file = {alice_token}
publish = orders., logs.
consume = orders.
configure = orders.

; may only publish to logs.* and read events.*
[user.bob]
token_sha256 = {bob}
publish = logs.
consume = events.

[user.admin]
token_sha256 = {admin}
publish = *
consume = *
configure = *
admin = true
""".format(tls_ca=("tls_ca = %s" % files["ca"]) if client_certs else "",
           tls=("tls_cert = %s\ntls_key = %s" % (files["cert"], files["key"])
                if tls else ""),
           bob=sha256(TOKENS["bob"]), admin=sha256(TOKENS["admin"]), **files)


def secure_cluster(n=3, client_certs=False, extra=None, tls=True):
    """A Cluster (not started) whose nodes run with auth and (unless
    tls=False) TLS; its .files has the paths of secure_files()."""
    c = Cluster(n, extra=extra)
    files = secure_files(os.path.join(c.dir, "tls"))
    path = os.path.join(c.dir, "secure.ini")
    with open(path, "w") as f:
        f.write(secure_config(files, client_certs, tls))
    c.extra += ["--config", path]
    c.files = files
    return c
