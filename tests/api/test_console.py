"""The live console in a real browser (Debian's Chromium, driven by Playwright): sign in with a
token, the Now page shows exactly what Redis holds for the newest window and follows the next
windows as a running `netspectra engine` closes them (and as its Redis sink writes them), a click
on a talker opens its host page, a planted alert appears live; a wrong token gets the login prompt and no data; without Redis the console
shows the store's history and says live data is off. Screenshots of every page are written
under the test's directory and checked to be non-blank (decoded by the browser: pixels drawn)."""
from __future__ import annotations

import os
import shutil
from pathlib import Path

import httpx
import pytest

from api.config import ApiConfig
from tests.api.conftest import serve
from tests.conftest import ROOT, _free_ports, require_tool
from tests.support import capture_alerts, rows_of

TOKEN = "console-token-0123456789"
CHROMIUM = "/usr/bin/chromium"
# headless Chromium on a closed network: no background connections, no sandbox as root (CI)
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
        "--disable-component-update", "--disable-sync"]
SCREENSHOT_DIR = os.environ.get("NETSPECTRA_SCREENSHOTS")     # also copy them here (docs/ for the README)


# Decodes a PNG in the browser itself and returns the share of pixels unlike the most common one.
_INK = """async (b64) => {
  const img = new Image();
  img.src = "data:image/png;base64," + b64;
  await img.decode();
  const c = document.createElement("canvas");
  [c.width, c.height] = [img.width, img.height];
  const ctx = c.getContext("2d");
  ctx.drawImage(img, 0, 0);
  const d = ctx.getImageData(0, 0, c.width, c.height).data;
  const counts = new Map();
  for (let i = 0; i < d.length; i += 4) {
    const k = (d[i] << 16) | (d[i + 1] << 8) | d[i + 2];
    counts.set(k, (counts.get(k) || 0) + 1);
  }
  return 1 - Math.max(...counts.values()) / (d.length / 4);
}"""


def ink(browser, png: bytes) -> float:
    import base64
    page = browser.new_page()
    try:
        return page.evaluate(_INK, base64.b64encode(png).decode())
    finally:
        page.close()


@pytest.fixture(scope="module")
def console(synth_pcap, tmp_path_factory, local_stack):
    """The API (chDB store + Redis) holding all but the capture's last window, and the rest to write."""
    require_tool("chromium")
    from flows.capture_reader import CaptureReader
    from flows.config import WindowConfig
    from flows.window import LocalPipeline
    from sinks.chdb_store import ChdbStore
    from sinks.redis_state import RedisState

    pipe = LocalPipeline(WindowConfig(window_s=10))
    results = [r for b in CaptureReader(str(synth_pcap)) for r in pipe.feed(b)] + pipe.flush()
    results.sort(key=lambda r: r.start)
    source = f"console-{os.getpid()}"
    rows = rows_of(results, source)
    store_dir = tmp_path_factory.mktemp("console-store")
    store = ChdbStore(str(store_dir))
    store.write(rows[:-1])
    _, ports, _ = local_stack
    redis_url = f"127.0.0.1:{ports['redis']}"
    live = RedisState(redis_url, source)          # the engine's Redis sink
    live.write(rows[:-1])
    alerts = capture_alerts(synth_pcap, 10)
    cfg = ApiConfig(store=str(store_dir), redis=redis_url, grpc_port=0, http_port=_free_ports(1)[0],
                    tokens=[{"token": TOKEN}])
    for _service, _target, url in serve(cfg):
        yield {"url": url, "source": source, "rows": rows, "live": live, "store": store, "store_dir": store_dir,
               "alerts": alerts, "redis_url": redis_url}


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright
    require_tool("chromium")
    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield b
        b.close()


def shot(page, path: Path) -> None:
    png = page.screenshot(path=str(path), full_page=True)
    assert ink(page.context.browser, png) > 0.005, f"{path} is blank"      # > 0.5% of pixels drawn
    if SCREENSHOT_DIR:
        shutil.copy(path, Path(SCREENSHOT_DIR) / f"console-{path.name}")


def sign_in(page, url: str, token: str) -> None:
    page.goto(url + "/")
    page.wait_for_selector("#login:not([hidden])")
    page.fill("#token", token)
    page.click("#login-form button")


def test_wrong_or_missing_token_gets_the_login_prompt_and_no_data(console, browser, tmp_path):
    page = browser.new_page()
    page.goto(console["url"] + "/")
    page.wait_for_selector("#login:not([hidden])")
    assert page.is_hidden("#page-now") and page.is_hidden("#controls")
    shot(page, tmp_path / "login.png")
    sign_in(page, console["url"], "not-the-token")
    page.wait_for_selector("#login-error:not([hidden])")
    assert "not accepted" in page.text_content("#login-error")
    assert page.is_hidden("#page-now") and page.get_attribute("#window-line", "data-packets") is None
    for path in ("/v1/live/window", "/v1/sources", "/v1/live/series"):       # and the API keeps refusing
        assert httpx.get(console["url"] + path, headers={"Authorization": "Bearer not-the-token"}).status_code == 401
        assert httpx.get(console["url"] + path).status_code == 401
    page.close()


def _redis_newest(console) -> tuple[dict, list[tuple[str, float]]]:
    from schemas.redis_keys import prefix
    r, p = console["live"].r, prefix(console["source"])
    return r.hgetall(f"{p}latest"), r.zrevrange(f"{p}talkers", 0, 9, withscores=True)


def _shown(page) -> tuple[dict, list[tuple[str, float]]]:
    line = page.query_selector("#window-line")
    totals = {k: int(line.get_attribute(f"data-{k}")) for k in ("start", "packets", "bytes", "flows")}
    talkers = [(row.get_attribute("data-key"), float(row.get_attribute("data-value")))
               for row in page.query_selector_all("#talkers tr[data-key]")]
    return totals, talkers


def _as_shown(latest: dict, talkers) -> tuple[dict, list]:
    totals = {"start": int(latest[b"window_start_ms"]), **{k: int(latest[k.encode()]) for k in ("packets", "bytes", "flows")}}
    return totals, [(k.decode(), v) for k, v in talkers]


def _name(console, addr: str, name: str, query: str) -> None:
    """A dns_names row in the console's store: `addr` named `name` (asked as `query`) in the newest window."""
    import numpy as np

    from schemas.addresses import from_text
    from schemas.clickhouse import table_columns
    from sinks.chdb_store import ChdbStore
    ChdbStore(str(console["store_dir"])).insert("dns_names", table_columns(
        "dns_names", 1, console["rows"][-1].start, console["source"],
        {"addr": np.frombuffer(from_text(addr), np.uint8).reshape(1, 16), "name": [name], "query": [query],
         "answers": np.array([3], np.uint64)}))


def _tls_name(console, addr: str, sni: str) -> None:
    """One of `addr`'s flow records in the store written again with a TLS server name (the same
    key and counts: it replaces the record, the totals stay)."""
    from schemas.addresses import from_text
    from sinks.chdb_store import ChdbStore
    for w in console["rows"][-2::-1]:
        f = w.tables["flows"]
        i = next((i for i in range(len(f["src"])) if bytes(f["src"][i]) == from_text(addr)), None)
        if i is not None:
            one = {c: [v[i]] if isinstance(v, list) else v[i:i + 1] for c, v in f.items() if not c.startswith("tls_")}
            ChdbStore(str(console["store_dir"])).insert("flows", {**one, "tls_sni": [sni], "tls_ja4": [""],
                                                                  "tls_alpn": ["h2"]})
            return
    raise AssertionError(f"{addr} has no flow record in the store")


def test_now_page_is_exact_follows_the_next_window_and_leads_to_hosts_and_alerts(console, browser, tmp_path):
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    errors = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    sign_in(page, console["url"], TOKEN)
    page.wait_for_selector(f"#source option[value='{console['source']}']", state="attached")
    page.select_option("#source", console["source"])
    on = "document.getElementById('window-line').dataset"
    page.wait_for_function(f"{on}.source == '{console['source']}' && {on}.start == '{console['rows'][-2].start // 10**6}'")
    page.wait_for_selector("#talkers tr[data-key]")
    assert _shown(page) == _as_shown(*_redis_newest(console))       # exact: totals and the top talkers
    assert page.query_selector_all("#protocols tr[data-key]") and page.query_selector_all("#ports tr[data-key]")
    assert page.query_selector("#chart-bps canvas")
    shot(page, tmp_path / "now.png")

    console["live"].write(console["rows"][-1:])          # the engine closes the next window
    page.wait_for_function(f"{on}.source == '{console['source']}' && {on}.start == '{console['rows'][-1].start // 10**6}'",
                           timeout=15_000)
    page.wait_for_function("document.querySelectorAll('#talkers tr[data-key]').length > 0")
    assert _shown(page) == _as_shown(*_redis_newest(console))

    top = page.query_selector("#talkers tr[data-key]").get_attribute("data-key")
    _name(console, top, "top.example", "www.top.example")        # a DNS answer named it in the newest window
    _tls_name(console, top, "secure.example")                      # and one of its connections had this SNI
    page.click(f"#talkers tr[data-key='{top}'] a")
    page.wait_for_selector("#host-peers tr[data-key]")
    assert page.text_content("#host-title") == top and page.query_selector("#chart-host canvas")
    page.wait_for_selector("#host-names tr[data-key='top.example']")
    assert page.text_content("#host-names tr[data-key='top.example'] td.key") == "top.example www.top.example"
    page.wait_for_selector("#host-tls tr[data-key='secure.example']")
    assert len(page.query_selector_all("#host-tls tr[data-key]")) == 1
    shot(page, tmp_path / "host.png")

    page.click("nav a[data-page=alerts]")
    page.wait_for_selector("#alerts td.empty, #alerts tr[data-rule]")
    assert not page.query_selector("#alerts tr[data-rule='syn_flood']")
    planted = [a for a in console["alerts"] if a.rule == "syn_flood"]
    assert planted
    console["live"].write_alerts(planted)                 # the engine raises it: live over the alert stream
    page.wait_for_selector("#alerts tr[data-rule='syn_flood'][data-state='firing']", timeout=15_000)
    shot(page, tmp_path / "alerts.png")

    page.set_viewport_size({"width": 390, "height": 844})         # a phone
    page.click("nav a[data-page=now]")
    page.wait_for_selector("#talkers tr[data-key]")
    shot(page, tmp_path / "phone.png")
    assert not errors
    page.close()


def test_without_redis_the_console_shows_the_stores_history_and_says_live_is_off(console, browser, tmp_path):
    cfg = ApiConfig(store=str(console["store_dir"]), grpc_port=0, http_port=_free_ports(1)[0], tokens=[{"token": TOKEN}])
    for _service, _target, url in serve(cfg):
        page = browser.new_page()
        sign_in(page, url, TOKEN)
        page.wait_for_selector("#talkers tr[data-key]")
        assert "Live data is off" in page.text_content("#banner")
        newest = console["rows"][-2]          # the store holds all but the last window
        totals = newest.tables["window_totals"]
        shown, talkers = _shown(page)
        assert shown == {"start": newest.start // 10**6, "packets": int(totals["packets"][0]),
                         "bytes": int(totals["bytes"][0]), "flows": int(totals["flows"][0])}
        assert talkers == [(k, float(v)) for k, v in list(newest.live.talkers.items())[:10]]
        shot(page, tmp_path / "history.png")
        page.close()


def test_console_assets_are_all_local():
    """No CDN: every script and stylesheet the page loads is served by the API itself."""
    import re
    html = (ROOT / "api" / "console" / "index.html").read_text()
    refs = re.findall(r'(?:src|href)="([^"]+)"', html)
    assert refs and all(r.startswith(("/console/", "#", "data:")) for r in refs), refs
    for r in refs:
        if r.startswith("/console/"):
            assert (ROOT / "api" / r.lstrip("/")).is_file(), r


def test_live_stream_sends_one_event_per_window_written(console):
    """The feed the console follows: `event: window` for each window the engine's Redis sink
    writes (pub/sub, no polling); a keep-alive comment first; 503 without Redis."""
    import json
    import threading
    import time

    from sinks.redis_state import RedisState

    got: list[dict] = []
    headers = {"Authorization": f"Bearer {TOKEN}"}
    source = console["source"] + "-stream"         # its own: the page tests' windows stay as they are
    sink = RedisState(console["redis_url"], source)

    def read():
        with httpx.stream("GET", console["url"] + "/v1/live/stream", params={"source": source},
                          headers=headers, timeout=20) as r:
            assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
            event = None
            for line in r.iter_lines():
                if line.startswith("event: "):
                    event = line[7:]
                elif line.startswith("data: ") and event == "window":
                    got.append(json.loads(line[6:]))
                    return

    t = threading.Thread(target=read)
    t.start()
    deadline = time.monotonic() + 15
    while t.is_alive() and time.monotonic() < deadline:
        sink.write(console["rows"][:1])         # until the reader is subscribed and hears one
        t.join(0.5)
    assert got and got[0] == {"source": source, "window_start_ms": console["rows"][0].start // 10**6}


def test_live_stream_without_redis_is_503(console):
    cfg = ApiConfig(store=str(console["store_dir"]), grpc_port=0, http_port=_free_ports(1)[0], tokens=[{"token": TOKEN}])
    for _service, _target, url in serve(cfg):
        r = httpx.get(url + "/v1/live/stream", headers={"Authorization": f"Bearer {TOKEN}"}, timeout=10)
        assert r.status_code == 503 and "Redis" in r.json()["error"]


def _split(pcap: Path, at_s: float, first: Path, second: Path) -> None:
    """The capture's packets before `at_s` seconds from its start into `first`, the rest into `second`."""
    import dpkt
    with open(pcap, "rb") as f, open(first, "wb") as a, open(second, "wb") as b:
        reader = dpkt.pcap.Reader(f)
        wa, wb = dpkt.pcap.Writer(a, linktype=reader.datalink()), dpkt.pcap.Writer(b, linktype=reader.datalink())
        t0 = None
        for ts, buf in reader:
            t0 = ts if t0 is None else t0
            (wa if ts - t0 < at_s else wb).writepkt(buf, ts)


def test_the_page_follows_a_running_engine(console, browser, local_stack, synth_pcap, tmp_path):
    """`netspectra engine` tailing a topic, writing Redis: the page shows its newest window, and
    when the collector publishes the rest of the capture the page moves on by itself to the
    windows the engine closes, exact against Redis."""
    import subprocess
    import sys

    from schemas.redis_keys import prefix
    from tests.pipeline import create_topic, run
    from tests.support import stop, wait_for

    _, ports, _ = local_stack
    boot, topic = f"127.0.0.1:{ports['kafka']}", f"console-live-{os.getpid()}"
    create_topic(boot, topic, 2)
    first, second = tmp_path / "first.pcap", tmp_path / "second.pcap"
    _split(synth_pcap, 35, first, second)
    log = open(tmp_path / "engine.log", "w")
    engine = subprocess.Popen([sys.executable, "-m", "netspectra.cli", "engine", "--kafka", boot, "--topic", topic,
                               "--window", "10", "--workers", "1", "--idle", "3", "--redis", console["redis_url"]],
                              cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
    r, p = console["live"].r, prefix(topic)
    newest = lambda: int(r.hget(f"{p}latest", "window_start_ms") or 0)      # noqa: E731
    try:
        assert run("collect", "--pcap", str(first), "--kafka", boot, "--topic", topic).returncode == 0
        wait_for(lambda: newest() >= 1_700_000_020_000, 60, "the engine's first windows in Redis")
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        sign_in(page, console["url"], TOKEN)
        page.wait_for_selector(f"#source option[value='{topic}']", state="attached")
        page.select_option("#source", topic)
        shown = lambda: (page.get_attribute("#window-line", "data-source"),                   # noqa: E731
                         int(page.get_attribute("#window-line", "data-start") or 0))
        wait_for(lambda: shown() == (topic, newest()), 30, "the page on the engine's newest window")
        before = shown()[1]
        assert run("collect", "--pcap", str(second), "--kafka", boot, "--topic", topic).returncode == 0
        wait_for(lambda: newest() == console["rows"][-1].start // 10**6, 60, "the capture's last window in Redis")
        wait_for(lambda: shown() == (topic, newest()), 30, "the page on the capture's last window")
        page.wait_for_function("document.querySelectorAll('#talkers tr[data-key]').length > 0")
        assert int(page.get_attribute("#window-line", "data-start")) > before
        latest = r.hgetall(f"{p}latest")
        talkers = r.zrevrange(f"{p}talkers", 0, 9, withscores=True)
        assert _shown(page) == _as_shown(latest, talkers)
        page.close()
    finally:
        stop([engine])
        log.close()


def test_the_series_takes_what_redis_no_longer_holds_from_the_store(console):
    """Redis keeps an hour: a longer range's earlier windows come from the store."""
    from sinks.chdb_store import ChdbStore
    from sinks.redis_state import RedisState
    source = console["source"] + "-history"
    rows = rows_of_source(console["rows"], source)
    ChdbStore(str(console["store_dir"])).write(rows)
    RedisState(console["redis_url"], source).write(rows[-2:])      # the others expired
    got = httpx.get(console["url"] + "/v1/live/series", params={"source": source, "last": "6h"},
                    headers={"Authorization": f"Bearer {TOKEN}"}, timeout=30).json()
    assert got["live"] and [w["start_ms"] for w in got["windows"]] == [r.start // 10**6 for r in rows]
    assert [w["packets"] for w in got["windows"]] == [int(r.tables["window_totals"]["packets"][0]) for r in rows]


def rows_of_source(rows, source: str) -> list:
    """The same windows under another source name."""
    import copy
    out = []
    for w in rows:
        w = copy.deepcopy(w)
        for t in w.tables.values():
            t["source"] = [source] * len(t["source"])
        out.append(w)
    return out
