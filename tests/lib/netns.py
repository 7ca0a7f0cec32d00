"""Network namespaces for tests that cut links between nodes (needs root).

Net(prefix, subnet, n) is a bridge `<prefix>br` in the root namespace with
address <subnet>.1/24 and n namespaces `<prefix>n<i>`, each with an eth0
at <subnet>.<10+i> on the bridge and lo up. Every name starts with the
prefix, so that what a crashed run left can be found and removed without
touching anything else (`clear`). A cut is an iptables DROP rule in the
INPUT chain of the receiving namespace keyed by the sender's address: it
filters node-to-node traffic only, never the test's own connections (they
come from <subnet>.1), and nothing outside these namespaces.
"""
import subprocess


def run(cmd, check=True):
    """Runs cmd; returns its stdout, raises on failure when check."""
    done = subprocess.run(cmd, capture_output=True, text=True,
                          stdin=subprocess.DEVNULL)
    if check and done.returncode:
        raise RuntimeError("%s: %s" % (" ".join(cmd), done.stderr.strip()))
    return done.stdout


class Net:
    def __init__(self, prefix, subnet, n):
        self.prefix, self.subnet, self.n = prefix, subnet, n

    def ns(self, i):
        return "%sn%d" % (self.prefix, i)

    def address(self, i):
        return "%s.%d" % (self.subnet, 10 + i)

    def exec_args(self, i):
        """The command prefix that runs a program in node i's namespace."""
        return ["ip", "netns", "exec", self.ns(i)]

    def clear(self):
        """Kills the processes left in our namespaces, deletes them and our
        links."""
        for line in run(["ip", "netns", "list"], check=False).splitlines():
            name = (line.split() or [""])[0]
            if name.startswith(self.prefix):
                pids = run(["ip", "netns", "pids", name], check=False)
                for pid in pids.split():
                    run(["kill", "-KILL", pid], check=False)
                run(["ip", "netns", "del", name], check=False)
        for line in run(["ip", "-o", "link", "show"], check=False).splitlines():
            fields = line.split(":", 2)
            link = fields[1].strip().split("@")[0] if len(fields) > 1 else ""
            if link.startswith(self.prefix):
                run(["ip", "link", "del", link], check=False)

    def up(self):
        bridge = self.prefix + "br"
        cmds = [["ip", "link", "add", bridge, "type", "bridge"],
                ["ip", "addr", "add", self.subnet + ".1/24", "dev", bridge],
                ["ip", "link", "set", bridge, "up"]]
        for i in range(1, self.n + 1):
            veth, inside = "%sh%d" % (self.prefix, i), self.exec_args(i)
            cmds += [["ip", "netns", "add", self.ns(i)],
                     ["ip", "link", "add", veth, "type", "veth", "peer",
                      "name", "eth0", "netns", self.ns(i)],
                     ["ip", "link", "set", veth, "master", bridge],
                     ["ip", "link", "set", veth, "up"],
                     inside + ["ip", "link", "set", "lo", "up"],
                     inside + ["ip", "addr", "add",
                               self.address(i) + "/24", "dev", "eth0"],
                     inside + ["ip", "link", "set", "eth0", "up"],
                     inside + ["iptables", "-F"]]
        for cmd in cmds:
            run(cmd)

    def cut(self, a, b):
        """Nodes a and b stop hearing each other (both ways)."""
        for rx, tx in ((a, b), (b, a)):
            run(self.exec_args(rx) + ["iptables", "-A", "INPUT", "-s",
                                      self.address(tx), "-j", "DROP"])

    def heal(self):
        for i in range(1, self.n + 1):
            run(self.exec_args(i) + ["iptables", "-F", "INPUT"])
