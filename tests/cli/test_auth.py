"""Authentication and TLS from the CLI and from the C library
(docs/cli.md, docs/operations.md "Authentication and TLS").

Scenario: a 3-node cluster with auth = on and TLS (certificates made at test
time, tests/lib/raftmq_secure.py). The CLI without --tls is refused with one
line saying TLS is required; with --tls but the system's CAs it fails on the
certificate; with --tls-ca and no token, or a wrong one, it fails on
authentication; with --token-file / $RAFTMQ_TOKEN it publishes and
consumes; a permission failure names the missing permission; cluster
status needs an admin. The C program tls_client (raftmq_options.tls,
tls_ca_file, auth_token, tls_server_name) does the same round trip and
reports the library's error codes for a plain connection, a bad token and a
wrong server name."""
import json
import os
import subprocess
import sys

import pytest

from conftest import Cli

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "lib"))
from raftmq_cluster import serve  # noqa: E402
from raftmq_secure import TOKENS, secure_cluster  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(HERE))


def tls_client_path():
    p = os.environ.get("RAFTMQ_TLS_CLIENT")
    if p:
        return p
    for d in ("build/plain", "build/dev", "build/sanitize"):
        c = os.path.join(ROOT, d, "tests", "cli", "tls_client")
        if os.path.exists(c):
            return c
    raise RuntimeError("tls_client not found: build it or set "
                       "RAFTMQ_TLS_CLIENT")


@pytest.fixture(scope="module")
def sc():
    yield from serve(secure_cluster(3))


def one_line(r):
    assert r.rc == 1, r
    lines = r.err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("raftmq: "), r
    return lines[0]


def test_cli_refusals(sc):
    cli = Cli(sc)
    line = one_line(cli("queue", "list", "--token", TOKENS["alice"]))
    assert "requires TLS" in line
    line = one_line(cli("--tls", "--token", TOKENS["alice"], "queue",
                        "list"))
    assert "certificate" in line and "not trusted" in line
    line = one_line(cli("--tls-ca", sc.files["ca"], "queue", "list"))
    assert "no auth token" in line
    line = one_line(cli("--tls-ca", sc.files["ca"], "--token", "nope",
                        "queue", "list"))
    assert "refused the auth token" in line
    line = one_line(cli("--tls-ca", sc.files["ca"], "--tls-server-name",
                        "elsewhere", "--token", TOKENS["bob"], "queue",
                        "list"))
    assert "not trusted" in line
    line = one_line(cli("--tls-ca", sc.files["ca"], "--token-file",
                        "/nonexistent/token", "queue", "list"))
    assert "token file" in line


def test_cli_round_trip_and_permissions(sc):
    cli = Cli(sc)
    alice = ["--tls-ca", sc.files["ca"], "--token-file",
             sc.files["alice_token"]]
    cli.ok(*alice, "queue", "create", "orders.cli")
    # the environment works as well as flags (flags after the command too)
    env = {"RAFTMQ_TOKEN": TOKENS["alice"], "RAFTMQ_TLS_CA": sc.files["ca"]}
    r = cli.ok("publish", "--queue", "orders.cli", "--count", "5", env=env)
    assert len(r.lines()) == 5
    r = cli.ok("consume", "orders.cli", "--max", "5", "--timeout", "3000",
               "--tls-ca", sc.files["ca"], "--token", TOKENS["alice"])
    got = [json.loads(l) for l in r.lines()]
    assert len(got) == 5 and all(m["body"].startswith(m["id"]) for m in got)
    line = one_line(cli(*alice, "queue", "create", "payments"))
    assert 'user "alice" may not configure queue "payments"' in line
    line = one_line(cli(*alice, "cluster", "status"))
    assert "admin" in line
    r = cli.ok("--tls-ca", sc.files["ca"], "--token", TOKENS["admin"],
               "cluster", "status", "--json")
    st = json.loads(r.out)
    assert st["leader_id"] != 0 and len(st["nodes"]) == 3
    # bob sees only what he has a permission on
    r = cli.ok("--tls-ca", sc.files["ca"], "--token", TOKENS["bob"],
               "queue", "list", "--json")
    assert "orders.cli" not in r.out


def run_c(sc, *args):
    p = subprocess.run([tls_client_path(), sc.addresses()] + list(args),
                       capture_output=True, text=True, timeout=60)
    return p.returncode, p.stdout.strip()


def test_c_library(sc):
    rc, out = run_c(sc, "orders.c", "--tls", "--ca", sc.files["ca"],
                    "--token", TOKENS["alice"])
    assert rc == 0 and out.startswith("ok seq=") and \
        "body=over tls ack=0" in out, out
    # the certificate names 127.0.0.1 and localhost
    rc, out = run_c(sc, "orders.c", "--tls", "--ca", sc.files["ca"],
                    "--server-name", "localhost", "--token",
                    TOKENS["alice"])
    assert rc == 0, out
    rc, out = run_c(sc, "orders.c", "--token", TOKENS["alice"])
    assert rc == 1 and out.startswith("err=107 ") and "requires TLS" in out
    rc, out = run_c(sc, "orders.c", "--tls", "--ca", sc.files["ca"],
                    "--token", "nope")
    assert rc == 1 and out.startswith("err=107 "), out
    rc, out = run_c(sc, "orders.c", "--tls", "--ca", sc.files["ca"],
                    "--server-name", "elsewhere", "--token",
                    TOKENS["alice"])
    assert rc == 1 and out.startswith("err=200 ") and "not trusted" in out
    rc, out = run_c(sc, "payments", "--tls", "--ca", sc.files["ca"],
                    "--token", TOKENS["alice"])
    assert rc == 1 and out.startswith("err=108 "), out
    rc, out = run_c(sc, "orders.c", "--ca", sc.files["ca"], "--token",
                    TOKENS["alice"])
    assert rc == 1 and out.startswith("err=5 ") and "tls is off" in out


def test_c_library_client_certificate():
    c = secure_cluster(1, client_certs=True)
    try:
        c.start()
        f = c.files
        p = subprocess.run(
            [tls_client_path(), c.addresses(), "orders.cert", "--tls",
             "--ca", f["ca"], "--cert", f["client_cert"], "--key",
             f["client_key"], "--token", TOKENS["alice"]],
            capture_output=True, text=True, timeout=60)
        assert p.returncode == 0 and p.stdout.startswith("ok "), p
        cli = Cli(c)
        cli.ok("--tls-ca", f["ca"], "--tls-cert", f["client_cert"],
               "--tls-key", f["client_key"], "--token", TOKENS["alice"],
               "queue", "info", "orders.cert")
    except BaseException:
        sys.stderr.write(c.logs())
        raise
    finally:
        c.cleanup()
