"""Headless Chromium driven through chromedriver's W3C WebDriver HTTP API
with nothing but urllib (Debian's chromium + chromium-driver, no selenium).

    with Browser(profile_dir) as b:
        b.get("http://127.0.0.1:8080/")
        b.execute("return document.title")
        b.screenshot("page.png")
"""
import base64
import json
import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request

# Debian's paths; RAFTMQ_CHROMIUM / RAFTMQ_CHROMEDRIVER override them.
CHROMIUM = os.environ.get("RAFTMQ_CHROMIUM", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("RAFTMQ_CHROMEDRIVER", "/usr/bin/chromedriver")

# As in /work/.library/env/machines/c.md: no sandbox (root in a container),
# no GPU, and none of Chromium's own network traffic (the network is closed;
# without these it retries Google's hosts at every start).
# --disable-dev-shm-usage: a container's /dev/shm is often 64 MB.
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
    "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync",
    "--disable-dev-shm-usage", "--window-size=1100,760",
]


def missing():
    """Why the browser cannot run here, or None."""
    for p in (CHROMIUM, CHROMEDRIVER):
        if not os.access(p, os.X_OK):
            return ("%s not found: install Debian's chromium and "
                    "chromium-driver (apt-get install --no-install-recommends "
                    "chromium chromium-driver)" % p)
    return None


def _free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class WebDriverError(RuntimeError):
    pass


class Browser:
    def __init__(self, profile_dir, log_path=None):
        self.port = _free_port()
        self.base = "http://127.0.0.1:%d" % self.port
        self.log_path = log_path or os.path.join(profile_dir, "..",
                                                 "chromedriver.log")
        log = open(self.log_path, "ab")
        # Its own session (process group), so that cleanup can end
        # chromedriver and the browsers it started, by that id only.
        self.proc = subprocess.Popen(
            [CHROMEDRIVER, "--port=%d" % self.port],
            stdout=log, stderr=log, stdin=subprocess.DEVNULL,
            start_new_session=True)
        log.close()
        self.session = None
        try:
            self._wait_driver()
            os.makedirs(profile_dir, exist_ok=True)
            caps = {"capabilities": {"alwaysMatch": {
                "browserName": "chrome",
                "goog:chromeOptions": {
                    "binary": CHROMIUM,
                    "args": CHROMIUM_ARGS +
                    ["--user-data-dir=" + os.path.abspath(profile_dir)],
                },
            }}}
            self.session = self._call("POST", "/session", caps)["sessionId"]
        except BaseException:
            self.close()
            raise

    # ------------------------------------------------------------ plumbing

    def _wait_driver(self, timeout=20.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise WebDriverError("chromedriver exited with %s" %
                                     self.proc.returncode)
            try:
                if self._call("GET", "/status", timeout=1).get("ready"):
                    return
            except (OSError, WebDriverError):
                pass
            time.sleep(0.1)
        raise WebDriverError("chromedriver not ready within %.0f s" % timeout)

    def _call(self, method, path, body=None, timeout=60):
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(
            self.base + path, data=data, method=method,
            headers={"Content-Type": "application/json; charset=utf-8"})
        try:
            with urllib.request.urlopen(req, timeout=timeout) as r:
                out = json.loads(r.read().decode() or "{}")
        except urllib.error.HTTPError as e:
            try:
                v = json.loads(e.read().decode()).get("value", {})
                msg = "%s: %s" % (v.get("error"), v.get("message"))
            except ValueError:
                msg = str(e)
            raise WebDriverError("%s %s: %s" % (method, path, msg))
        return out.get("value")

    def _s(self, path):
        return "/session/%s%s" % (self.session, path)

    # ----------------------------------------------------------------- API

    def get(self, url):
        self._call("POST", self._s("/url"), {"url": url})

    def execute(self, script, *args):
        """Runs a function body in the page; returns its JSON result."""
        return self._call("POST", self._s("/execute/sync"),
                          {"script": script, "args": list(args)})

    def screenshot(self, path):
        png = base64.b64decode(self._call("GET", self._s("/screenshot")))
        with open(path, "wb") as f:
            f.write(png)
        return path

    def close(self):
        if self.session is not None:
            try:
                self._call("DELETE", self._s(""), timeout=15)
            except (OSError, WebDriverError):
                pass
            self.session = None
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        # Whatever chromedriver left behind in its own process group.
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except OSError:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
