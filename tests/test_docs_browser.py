"""The built docs in a real browser, offline: the math is typeset, nothing loads from a CDN.

The site is built once (mkdocs --strict, as tests/test_docs.py does), served on 127.0.0.1 and
opened in headless Chromium whose every other host name fails to resolve, so a script, font or
stylesheet that the site does not ship cannot load. Chromium is driven over the DevTools
protocol (``websockets``): it reports JavaScript exceptions, console errors and failed loads,
and evaluates a probe in the page after MathJax has typeset it. Three pages: the formulas (the
arithmatex math of the Markdown pages), one API page (no math, and each name listed once) and a
notebook (the $ $ / $$ $$ of its Markdown cells). A screenshot of the formulas page is kept in
build/docs-screenshots/ for CI's artifacts. Skips only where no Chromium can be found.
"""

import base64
import contextlib
import functools
import http.server
import json
import os
import re
import shutil
import socket
import subprocess
import threading
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCREENSHOTS = ROOT / "build" / "docs-screenshots"
BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")

# Delimiters MathJax would have replaced: \( \) \[ \] $$ and an inline $...$ (no space inside
# the dollar signs, as TeX writes it). Code, scripts and typeset math are not searched.
RAW_MATH = re.compile(r"\\[()\[\]]|\$\$|\$[^\s$][^$\n]{0,200}?\$")

# Failed loads the test accepts: images outside the site, such as a notebook's "Open in Colab"
# badge. The theme asks for no web font (mkdocs.yml: font: false), so no stylesheet or font may
# fail; a script, or anything from 127.0.0.1 that fails, is an error.
EXTERNAL_COSMETIC_HOSTS = ()


def find_browser() -> str | None:
    for name in (os.environ.get("CHROMIUM"), *BROWSERS):
        if name and (path := shutil.which(name)):
            return path
    return None


# --- the site, a server, the browser --------------------------------------------------------


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format, *args):  # noqa: A002 (the base class's name)
        pass


@pytest.fixture(scope="module")
def base_url(site):
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0),
                                             functools.partial(QuietHandler, directory=str(site)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()
    server.server_close()
    thread.join(timeout=10)


class DevTools:
    """The DevTools protocol over one page's websocket: commands, and the events in between."""

    def __init__(self, port: int, ws_path: str):
        from websockets.sync.client import connect
        # a socket of our own: no proxy from the environment between us and 127.0.0.1
        sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        self._stack = contextlib.ExitStack()  # connect() is a context manager (websockets >= 17)
        self.ws = self._stack.enter_context(connect(
            f"ws://127.0.0.1:{port}{ws_path}", sock=sock, max_size=None, open_timeout=10,
            ping_interval=None))
        self.last_id = 0
        self.events: list[dict] = []

    def _receive(self, deadline: float) -> dict:
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError("Chromium did not answer in time")
        return json.loads(self.ws.recv(timeout=left))

    def send(self, method: str, timeout: float = 30, **params) -> dict:
        self.last_id += 1
        self.ws.send(json.dumps({"id": self.last_id, "method": method, "params": params}))
        deadline = time.monotonic() + timeout
        while True:
            message = self._receive(deadline)
            if message.get("id") == self.last_id:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return message["result"]
            if "method" in message:
                self.events.append(message)

    def wait_for(self, event: str, timeout: float = 30) -> dict:
        deadline = time.monotonic() + timeout
        while True:
            message = self._receive(deadline)
            if "method" in message:
                self.events.append(message)
                if message["method"] == event:
                    return message

    def close(self):
        self._stack.close()


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    path = find_browser()
    if path is None:
        pytest.skip(f"no Chromium found (looked for $CHROMIUM, {', '.join(BROWSERS)}); "
                    "install it with `apt-get install -y chromium`")
    profile = tmp_path_factory.mktemp("chromium-profile")
    log = open(profile.parent / "chromium.log", "w")  # noqa: SIM115 (closed at teardown)
    proc = subprocess.Popen(
        [path, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-dev-shm-usage", f"--user-data-dir={profile}",
         # offline: every host but 127.0.0.1 fails to resolve, and no proxy is asked
         "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1", "--no-proxy-server",
         "--remote-debugging-port=0", "--window-size=1280,1000", "about:blank"],
        stdout=log, stderr=subprocess.STDOUT,
    )
    devtools = None
    try:
        port_file = profile / "DevToolsActivePort"
        deadline = time.monotonic() + 60
        while not (port_file.is_file() and len(port_file.read_text().splitlines()) >= 2):
            assert proc.poll() is None, f"Chromium exited with {proc.returncode}: {log_tail(log)}"
            assert time.monotonic() < deadline, f"Chromium did not start in 60 s: {log_tail(log)}"
            time.sleep(0.1)
        port = int(port_file.read_text().splitlines()[0])
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        with opener.open(f"http://127.0.0.1:{port}/json/list", timeout=10) as response:
            targets = json.load(response)
        page = next(t for t in targets if t["type"] == "page")
        devtools = DevTools(port, "/devtools/page/" + page["id"])
        for domain in ("Page", "Runtime", "Log", "Network"):
            devtools.send(f"{domain}.enable")
        devtools.send("Emulation.setDeviceMetricsOverride", width=1280, height=1400,
                      deviceScaleFactor=1, mobile=False)
        yield devtools
    finally:
        if devtools is not None:
            devtools.close()
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
        log.close()


def log_tail(log) -> str:
    log.flush()
    return Path(log.name).read_text(errors="replace")[-2000:]


# --- a visit: load a page, wait for MathJax, probe it ---------------------------------------


PROBE = r"""
(async () => {
  const out = {mathjax: null};
  if (window.MathJax && MathJax.startup && MathJax.startup.promise) {
    await MathJax.startup.promise;          // resolved after the first typeset of the page
    out.mathjax = MathJax.version;
  }
  await document.fonts.ready;               // MathJax's CHTML fonts, for the screenshot
  out.containers = document.querySelectorAll("mjx-container").length;
  out.tex_errors = [...document.querySelectorAll("mjx-merror")].map(e => e.textContent);
  out.arithmatex = document.querySelectorAll(".arithmatex").length;
  out.arithmatex_raw = [...document.querySelectorAll(".arithmatex")]
    .filter(e => !e.querySelector("mjx-container")).map(e => e.textContent.slice(0, 80));
  out.notebook_cells = document.querySelectorAll(".jp-MarkdownOutput").length;
  out.notebook_math = document.querySelectorAll(".jp-MarkdownOutput mjx-container").length;
  const skip = new Set(["PRE", "CODE", "SCRIPT", "STYLE", "NOSCRIPT", "TEXTAREA", "MJX-CONTAINER"]);
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT, {
    acceptNode(node) {
      for (let e = node.parentElement; e; e = e.parentElement)
        if (skip.has(e.tagName)) return NodeFilter.FILTER_REJECT;
      return NodeFilter.FILTER_ACCEPT;
    }});
  const text = [];
  while (walker.nextNode()) text.push(walker.currentNode.nodeValue);
  out.text = text.join("");
  out.headings = [...document.querySelectorAll(".doc-heading[id]")].map(h => [h.tagName, h.id]);
  return out;
})()
"""


class Visit:
    def __init__(self, url: str, probe: dict, events: list[dict], seconds: float):
        self.url, self.probe, self.events, self.seconds = url, probe, events, seconds

    def problems(self, base_url: str) -> list[str]:
        """JavaScript exceptions, console errors, failed loads, scripts from elsewhere."""
        requests = {}
        problems = []
        for event in self.events:
            method, params = event["method"], event["params"]
            if method == "Network.requestWillBeSent":
                requests[params["requestId"]] = (params["request"]["url"], params.get("type", ""))
                if params.get("type") == "Script" and not params["request"]["url"].startswith(base_url):
                    problems.append(f"script from outside the site: {params['request']['url']}")
            elif method == "Network.loadingFailed":
                url, kind = requests.get(params["requestId"], ("?", params.get("type", "")))
                if not cosmetic_external(url, kind, base_url):
                    problems.append(f"failed to load {kind} {url}: {params.get('errorText')}")
            elif method == "Runtime.exceptionThrown":
                details = params["exceptionDetails"]
                problems.append("exception: " + details.get("exception", {}).get(
                    "description", details.get("text", "")))
            elif method == "Runtime.consoleAPICalled" and params["type"] in ("error", "assert"):
                problems.append("console.error: " + " ".join(
                    str(a.get("value", a.get("description", ""))) for a in params["args"]))
            elif method == "Log.entryAdded" and params["entry"]["level"] == "error":
                entry = params["entry"]
                url = entry.get("url", "")
                if not (entry.get("source") == "network" and url
                        and cosmetic_external(url, "", base_url, known=requests)):
                    problems.append(f"console ({entry.get('source')}): {entry.get('text')} {url}")
        return problems


def cosmetic_external(url: str, kind: str, base_url: str, known: dict | None = None) -> bool:
    if url.startswith(base_url) or not url.startswith(("http://", "https://")):
        return False
    if known is not None:  # a Log entry: the resource type comes from the request
        kind = next((k for u, k in known.values() if u == url), kind)
    host = url.split("/")[2]
    return kind == "Image" or host in EXTERNAL_COSMETIC_HOSTS


def visit(browser: DevTools, url: str) -> Visit:
    browser.events.clear()
    start = time.monotonic()
    browser.send("Page.navigate", url=url)
    browser.wait_for("Page.loadEventFired", timeout=60)
    result = browser.send("Runtime.evaluate", timeout=60, expression=PROBE, awaitPromise=True,
                          returnByValue=True)
    assert "exceptionDetails" not in result, result["exceptionDetails"]
    probe = result["result"]["value"]
    seconds = time.monotonic() - start
    return Visit(url, probe, list(browser.events), seconds)


@pytest.fixture(scope="module")
def pages(browser, base_url):
    """Each page visited once; the formulas page photographed."""
    visits = {}
    for name in ("formulas", "api/check", "notebooks/01_formulas_to_code"):
        visits[name] = visit(browser, f"{base_url}{name}/")
        if name == "formulas":
            shot = browser.send("Page.captureScreenshot", format="png")
            SCREENSHOTS.mkdir(parents=True, exist_ok=True)
            (SCREENSHOTS / "formulas.png").write_bytes(base64.b64decode(shot["data"]))
    for name, v in visits.items():  # shown with -s / -rA: what the assertions saw
        print(f"{name}: {v.probe['containers']} typeset formulas, MathJax {v.probe['mathjax']}, "
              f"{v.seconds:.1f} s")
    return visits


def mathjax_version() -> str:
    text = (ROOT / "docs" / "_hooks.py").read_text()
    return re.search(r'^MATHJAX_VERSION = "([\d.]+)"', text, re.M).group(1)


def raw_math(text: str) -> list[str]:
    return [text[max(0, m.start() - 30):m.end() + 30] for m in RAW_MATH.finditer(text)][:10]


# --- the tests ------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["formulas", "api/check", "notebooks/01_formulas_to_code"])
def test_page_loads_offline_without_errors(pages, base_url, name):
    v = pages[name]
    problems = v.problems(base_url)
    assert not problems, f"{name}: " + "\n".join(problems)
    # MathJax came from the site itself (a CDN script would have failed above)
    assert v.probe["mathjax"] == mathjax_version(), v.probe["mathjax"]
    assert not v.probe["tex_errors"], v.probe["tex_errors"]
    assert not raw_math(v.probe["text"]), raw_math(v.probe["text"])


def test_formulas_are_typeset(pages):
    probe = pages["formulas"].probe
    # every formula that arithmatex marked became a MathJax element
    assert probe["arithmatex"] > 100
    assert not probe["arithmatex_raw"], probe["arithmatex_raw"]
    assert probe["containers"] == probe["arithmatex"]
    shot = SCREENSHOTS / "formulas.png"
    assert shot.is_file() and shot.stat().st_size > 20_000, "no screenshot of the formulas page"


def test_notebook_math_is_typeset(pages):
    probe = pages["notebooks/01_formulas_to_code"].probe
    assert probe["notebook_cells"] > 0, "no notebook Markdown cells found (mkdocs-jupyter's classes?)"
    assert probe["notebook_math"] > 10
    # only the Markdown cells: code and outputs (a "$" in a string) are left alone
    assert probe["containers"] == probe["notebook_math"]


def test_api_page_lists_each_name_once(pages):
    import inspect

    import jaxnn.check
    probe = pages["api/check"].probe
    assert probe["containers"] == 0  # docstrings are not math
    ids = [i for _, i in probe["headings"]]
    repeated = sorted({i for i in ids if ids.count(i) > 1})
    assert not repeated, repeated
    # one heading per object: jaxnn.check.check_vjp and jaxnn.check.vjp.check_vjp are one function
    listed = {}
    for tag, i in probe["headings"]:
        if tag in ("H2", "H3"):  # objects, not their members
            listed.setdefault(i.rsplit(".", 1)[-1], []).append(i)
    twice = {name: where for name, where in listed.items() if len(where) > 1}
    assert not twice, f"listed more than once on the check page: {twice}"
    # and none left out: every documented function and class that jaxnn.check exports
    for name in jaxnn.check.__all__:
        obj = getattr(jaxnn.check, name)
        if (inspect.isfunction(obj) or inspect.isclass(obj)) and obj.__name__ == name and obj.__doc__:
            assert name in listed, f"jaxnn.check.{name} is not on the check page"
