"""The test network: one Linux bridge, one network namespace per node.

Layout (every name starts with PREFIX so that leftovers of a crashed run can
be found and removed without touching anything else on the machine):

    root namespace:  bridge rmqj-br (10.77.0.1/24), veths rmqj-h<i>
    node i:          namespace rmqj-n<i>, eth0 = 10.77.0.<10+i>/24, lo up

The harness (the clients) stays in the root namespace and reaches every node
through the bridge; partitions are iptables DROP rules in the INPUT chain of
the receiving node's namespace, keyed by the sender's address, so they cut
node-to-node traffic only and never the harness's own connections (they come
from 10.77.0.1). Dropping in INPUT of the receiver makes one-way partitions
possible: "a cannot hear b" is one rule in a's namespace.
"""
import subprocess

PREFIX = "rmqj-"
BRIDGE = PREFIX + "br"
SUBNET = "10.77.0"
HOST_ADDRESS = SUBNET + ".1"


def sh(*args, check=True, ns=None):
    """Runs a command (inside namespace `ns` if given); returns stdout."""
    cmd = (["ip", "netns", "exec", ns] if ns else []) + list(args)
    r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       stdin=subprocess.DEVNULL, text=True)
    if check and r.returncode != 0:
        raise RuntimeError("%s: exit %d: %s" % (" ".join(cmd), r.returncode,
                                                r.stderr.strip()))
    return r.stdout


def ns_name(i):
    return "%sn%d" % (PREFIX, i)


def node_address(i):
    return "%s.%d" % (SUBNET, 10 + i)


def leftover_namespaces():
    out = sh("ip", "netns", "list", check=False)
    return [line.split()[0] for line in out.splitlines()
            if line.startswith(PREFIX)]


def leftover_links():
    out = sh("ip", "-o", "link", "show", check=False)
    names = []
    for line in out.splitlines():
        parts = line.split(":", 2)
        if len(parts) > 1:
            name = parts[1].strip().split("@")[0]
            if name.startswith(PREFIX):
                names.append(name)
    return names


def cleanup(log=lambda s: None):
    """Removes every namespace and link a previous run left, killing the
    processes still inside those namespaces (ours: a raftmqd only runs in
    a namespace this harness created). Safe to call when nothing is left."""
    for ns in leftover_namespaces():
        pids = sh("ip", "netns", "pids", ns, check=False).split()
        for pid in pids:
            log("killing leftover process %s in %s" % (pid, ns))
            subprocess.run(["kill", "-CONT", pid], stderr=subprocess.DEVNULL)
            subprocess.run(["kill", "-KILL", pid], stderr=subprocess.DEVNULL)
        log("deleting leftover namespace %s" % ns)
        sh("ip", "netns", "del", ns, check=False)
    for link in leftover_links():
        log("deleting leftover link %s" % link)
        sh("ip", "link", "del", link, check=False)


def setup(n):
    """Creates the bridge and n namespaces wired to it."""
    sh("ip", "link", "add", BRIDGE, "type", "bridge")
    sh("ip", "addr", "add", HOST_ADDRESS + "/24", "dev", BRIDGE)
    sh("ip", "link", "set", BRIDGE, "up")
    for i in range(1, n + 1):
        ns, host_if = ns_name(i), "%sh%d" % (PREFIX, i)
        sh("ip", "netns", "add", ns)
        sh("ip", "link", "add", host_if, "type", "veth", "peer", "name",
           "eth0", "netns", ns)
        sh("ip", "link", "set", host_if, "master", BRIDGE)
        sh("ip", "link", "set", host_if, "up")
        sh("ip", "link", "set", "lo", "up", ns=ns)
        sh("ip", "addr", "add", node_address(i) + "/24", "dev", "eth0", ns=ns)
        sh("ip", "link", "set", "eth0", "up", ns=ns)
        # A fresh namespace has empty tables with ACCEPT policies; flush
        # anyway so a reused name never inherits rules.
        sh("iptables", "-F", ns=ns)


def drop(receiver, sender):
    """Node `receiver` stops hearing node `sender` (one direction)."""
    sh("iptables", "-A", "INPUT", "-s", node_address(sender), "-j", "DROP",
       ns=ns_name(receiver))


def heal(n):
    """Removes every partition rule on nodes 1..n."""
    for i in range(1, n + 1):
        sh("iptables", "-F", "INPUT", ns=ns_name(i), check=False)


def rules(i):
    """The DROP rules of node i (for the history and debugging)."""
    return [line for line in sh("iptables", "-S", "INPUT", ns=ns_name(i),
                                check=False).splitlines()
            if "DROP" in line]
