"""Browser tests of the HTML report: headless Chromium (Debian's ``chromium``) renders the page
through the Chrome DevTools protocol; the page must load without console errors or network
requests, every figure must have a non-zero rendered size on a laptop and a phone viewport (with
no horizontal page overflow on the phone), the estimate read from the DOM must equal the fitted
one, and printing must give a PDF.

Skipped, with the reason, only when no Chromium is installed, and never under CI: with the
environment variable ``CI`` set (``.ci/run`` sets it and installs Chromium) a missing Chromium
or websocket-client fails the tests instead.

The screenshot in docs/ is made by the same driver:

    python tests/test_report_browser.py --screenshot docs/report-screenshot.png
"""

from __future__ import annotations

import base64
import json
import os
import queue
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest

CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-extensions", "--disable-default-apps", "--mute-audio", "--hide-scrollbars",
         "--disable-dev-shm-usage", "--remote-debugging-port=0")


def find_chromium() -> str | None:
    env = os.environ.get("CINA_CHROMIUM")
    if env and Path(env).exists():
        return env
    if Path("/usr/bin/chromium").exists():
        return "/usr/bin/chromium"
    for name in CHROMIUM_NAMES:
        found = shutil.which(name)
        if found:
            return found
    return None


class Chromium:
    """A headless Chromium and one page, driven over the DevTools protocol (websocket)."""

    def __init__(self, executable: str, timeout: float = 60.0):
        import websocket  # websocket-client, a dev dependency

        self.timeout = timeout
        self.profile = tempfile.mkdtemp(prefix="cina-chromium-")
        self.proc = subprocess.Popen(
            [executable, *FLAGS, f"--user-data-dir={self.profile}", "about:blank"],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=lambda: [lines.put(ln) for ln in self.proc.stderr],
                         daemon=True).start()
        port = None
        deadline = time.monotonic() + timeout
        while port is None and time.monotonic() < deadline:
            try:
                line = lines.get(timeout=0.5)
            except queue.Empty:
                if self.proc.poll() is not None:
                    break
                continue
            m = re.search(r"DevTools listening on ws://[^:]+:(\d+)/", line)
            if m:
                port = int(m.group(1))
        if port is None:
            self.close()
            raise RuntimeError("chromium did not start its DevTools endpoint")
        page_ws = None
        while page_ws is None and time.monotonic() < deadline:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=10) as r:
                targets = json.load(r)
            page_ws = next((t["webSocketDebuggerUrl"] for t in targets if t["type"] == "page"),
                           None)
            if page_ws is None:
                time.sleep(0.2)
        if page_ws is None:
            self.close()
            raise RuntimeError("chromium opened no page")
        self.ws = websocket.create_connection(page_ws, timeout=timeout, suppress_origin=True)
        self._id = 0
        self.events: list[dict] = []
        for domain in ("Page", "Runtime", "Log", "Network"):
            self.send(f"{domain}.enable")

    def send(self, method: str, params: dict | None = None) -> dict:
        self._id += 1
        self.ws.send(json.dumps({"id": self._id, "method": method, "params": params or {}}))
        while True:
            msg = json.loads(self.ws.recv())
            if msg.get("id") == self._id:
                if "error" in msg:
                    raise RuntimeError(f"{method}: {msg['error']}")
                return msg.get("result", {})
            self.events.append(msg)

    def wait_for(self, event: str) -> dict:
        deadline = time.monotonic() + self.timeout
        seen = len(self.events)
        for msg in self.events[seen:]:
            if msg.get("method") == event:
                return msg
        while time.monotonic() < deadline:
            msg = json.loads(self.ws.recv())
            self.events.append(msg)
            if msg.get("method") == event:
                return msg
        raise TimeoutError(event)

    def open(self, path: Path, width: int, height: int, mobile: bool = False,
             scale: float = 1.0) -> None:
        self.send("Emulation.setDeviceMetricsOverride",
                  {"width": width, "height": height, "deviceScaleFactor": scale,
                   "mobile": mobile})
        self.events.clear()
        self.send("Page.navigate", {"url": Path(path).resolve().as_uri()})
        self.wait_for("Page.loadEventFired")

    def evaluate(self, expression: str):
        out = self.send("Runtime.evaluate", {"expression": expression, "returnByValue": True})
        if "exceptionDetails" in out:
            raise RuntimeError(f"page script failed: {out['exceptionDetails']}")
        return out["result"].get("value")

    def problems(self) -> list[str]:
        """Console errors and warnings, uncaught exceptions, log errors and any request that is
        not the report itself (the page must need nothing else)."""
        out = []
        for msg in self.events:
            m, p = msg.get("method"), msg.get("params", {})
            if m == "Runtime.consoleAPICalled" and p.get("type") in ("error", "warning",
                                                                     "assert"):
                out.append(f"console {p['type']}: {p.get('args')}")
            elif m == "Runtime.exceptionThrown":
                out.append(f"exception: {p.get('exceptionDetails')}")
            elif m == "Log.entryAdded" and p.get("entry", {}).get("level") in ("error",
                                                                               "warning"):
                out.append(f"log {p['entry']['level']}: {p['entry'].get('text')}")
            elif m == "Network.requestWillBeSent":
                url = p.get("request", {}).get("url", "")
                if not url.startswith(("file:", "data:")):
                    out.append(f"network request: {url}")
            elif m == "Network.loadingFailed":
                out.append(f"failed load: {p.get('errorText')}")
        return out

    def screenshot(self, path: Path, width: int, height: int) -> None:
        shot = self.send("Page.captureScreenshot", {
            "format": "png", "captureBeyondViewport": True,
            "clip": {"x": 0, "y": 0, "width": width, "height": height, "scale": 1}})
        Path(path).write_bytes(base64.b64decode(shot["data"]))

    def close(self) -> None:
        try:
            if getattr(self, "ws", None) is not None:
                self.ws.close()
        finally:
            if self.proc.poll() is None:
                self.proc.terminate()
                try:
                    self.proc.wait(10)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
                    self.proc.wait(10)
            shutil.rmtree(self.profile, ignore_errors=True)


PAGE_FACTS = """(() => {
  const svgs = [...document.querySelectorAll('svg')].map(s => {
    const r = s.getBoundingClientRect();
    return {id: s.id, width: r.width, height: r.height,
            title: (s.querySelector(':scope > title') || {}).textContent || '',
            desc: (s.querySelector(':scope > desc') || {}).textContent || '',
            labelledby: s.getAttribute('aria-labelledby') || ''};
  });
  const val = id => { const e = document.getElementById(id);
                      return e ? e.getAttribute('value') : null; };
  return {svgs, estimate: val('estimate'), ciLow: val('ci-low'), ciHigh: val('ci-high'),
          rv: val('rv'), headline: (document.getElementById('headline') || {}).textContent,
          scrollWidth: document.documentElement.scrollWidth, innerWidth: window.innerWidth,
          sections: [...document.querySelectorAll('main > section')].map(s => s.id),
          scripts: document.querySelectorAll('script').length,
          figcaptions: document.querySelectorAll('figure figcaption').length,
          wraps: [...document.querySelectorAll('.fig-wrap')].map(
            w => w.getBoundingClientRect().width),
          figureTables: document.querySelectorAll('figure + details table').length,
          figureDetails: document.querySelectorAll('figure + details').length};
})()"""


def make_lalonde_report(path: Path, benchmark_covariates=("re74", "re75", "age")):
    """The documented example: LaLonde NSW vs PSID controls, ATT, exact CInA."""
    import cina
    from cina.datasets import load_lalonde

    ds = load_lalonde("psid")
    est = cina.CInA(estimand="att").fit(ds.X, ds.t, ds.y)
    sens = est.sensitivity(benchmark_covariates=list(benchmark_covariates))
    cmd = ("cina estimate examples/lalonde_psid.csv --treatment treat --outcome re78 "
           "--estimand att --report report.html")
    est.report(path, sensitivity=sens, treatment_name="treat", outcome_name="re78",
               command=cmd)
    return est, sens


@pytest.fixture(scope="module")
def chromium():
    exe = find_chromium()
    in_ci = os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")
    if exe is None:
        reason = ("no Chromium installed (Debian: apt-get install chromium); .ci/run installs "
                  "it, so this test runs in CI")
        if in_ci:
            pytest.fail(f"CI={os.environ['CI']} but {reason}")
        pytest.skip(reason)
    try:
        import websocket  # noqa: F401
    except ImportError:
        reason = "websocket-client (a dev dependency) is needed to drive Chromium"
        if in_ci:
            pytest.fail(f"CI={os.environ['CI']} but {reason}")
        pytest.skip(reason)
    browser = Chromium(exe)
    yield browser
    browser.close()


@pytest.fixture(scope="module")
def small_report(tmp_path_factory):
    """A small synthetic fit (fast): ATE, a categorical and a constant column, so that every
    section has something to show."""
    import pandas as pd

    import cina

    rng = np.random.default_rng(5)
    n = 300
    X = pd.DataFrame({"age": rng.normal(40, 10, n), "score": rng.normal(size=n),
                      "group": rng.choice(["a", "b", "c"], n), "flag": rng.random(n) < 0.3,
                      "const": 1.0})
    logit = 0.04 * (X["age"] - 40) + 0.8 * X["score"] + 0.5 * (X["group"] == "b")
    t = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int)
    y = 2 * X["score"] + 0.05 * X["age"] + 1.5 * t + rng.normal(size=n)
    with pytest.warns(cina.errors.DataWarning):
        est = cina.CInA(lam_rel=0.3).fit(X, t, y)
    path = tmp_path_factory.mktemp("report") / "small.html"
    est.report(path, treatment_name="t", outcome_name="y")
    return est, path


def _check_page(facts: dict, est) -> None:
    assert facts["scripts"] == 0
    assert facts["sections"] == ["summary", "data", "balance", "weights", "overlap",
                                 "sensitivity", "method"]
    assert len(facts["svgs"]) >= 4  # love plot, weights, overlap, sensitivity contour
    for svg in facts["svgs"]:
        assert svg["width"] > 50 and svg["height"] > 50, svg
        assert svg["title"] and svg["desc"] and svg["labelledby"], svg
    # every figure has a caption and a data table with its numbers
    assert facts["figcaptions"] == len(facts["svgs"]) == facts["figureDetails"]
    assert facts["figureTables"] >= len(facts["svgs"])
    # the estimate in the DOM is the fitted one, exactly (repr round-trips a float)
    assert float(facts["estimate"]) == est.effect_
    lo, hi = est.effect_interval(0.05)
    assert float(facts["ciLow"]) == lo and float(facts["ciHigh"]) == hi


def test_report_renders_on_laptop_and_phone(chromium, small_report):
    est, path = small_report
    chromium.open(path, 1280, 900)
    facts = chromium.evaluate(PAGE_FACTS)
    assert chromium.problems() == []
    _check_page(facts, est)
    for svg in facts["svgs"]:  # on a laptop every figure fits without scrolling
        assert svg["width"] <= facts["innerWidth"]
    # phone: the page reflows and nothing overflows sideways; figures keep a legible size
    # (>= 500 px wide) and scroll inside their own box
    chromium.open(path, 390, 844, mobile=True, scale=2)
    phone = chromium.evaluate(PAGE_FACTS)
    assert chromium.problems() == []
    _check_page(phone, est)
    assert phone["scrollWidth"] <= phone["innerWidth"] + 1, phone
    assert len(phone["wraps"]) == len(phone["svgs"])
    assert all(0 < w <= phone["innerWidth"] for w in phone["wraps"])
    assert all(svg["width"] >= 500 for svg in phone["svgs"])


def test_report_prints_to_pdf(chromium, small_report):
    _, path = small_report
    chromium.open(path, 1280, 900)
    pdf = base64.b64decode(chromium.send("Page.printToPDF", {"printBackground": True})["data"])
    assert pdf.startswith(b"%PDF") and len(pdf) > 20_000
    assert chromium.problems() == []


def test_lalonde_report_in_browser(chromium, tmp_path):
    path = tmp_path / "lalonde.html"
    est, sens = make_lalonde_report(path, benchmark_covariates=("re74",))
    chromium.open(path, 1280, 900)
    facts = chromium.evaluate(PAGE_FACTS)
    assert chromium.problems() == []
    _check_page(facts, est)
    assert float(facts["rv"]) == sens.rv
    assert "treated units" in facts["headline"] and "re78" in facts["headline"]


def main(argv: list[str]) -> int:
    import argparse

    parser = argparse.ArgumentParser(description="Render the LaLonde report and screenshot it")
    parser.add_argument("--screenshot", required=True, type=Path)
    parser.add_argument("--html", type=Path, default=None, help="keep the HTML here too")
    parser.add_argument("--width", type=int, default=1100)
    parser.add_argument("--height", type=int, default=1500)
    args = parser.parse_args(argv)
    exe = find_chromium()
    if exe is None:
        print("no chromium installed", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory() as tmp:
        html = args.html or Path(tmp) / "report.html"
        make_lalonde_report(html)
        browser = Chromium(exe)
        try:
            browser.open(html, args.width, args.height)
            problems = browser.problems()
            if problems:
                print("\n".join(problems), file=sys.stderr)
                return 1
            browser.screenshot(args.screenshot, args.width, args.height)
        finally:
            browser.close()
    print(f"wrote {args.screenshot}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
