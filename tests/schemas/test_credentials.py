"""The local stack's credentials file: clients reading it while `stack up` writes it never see
it half-written (they would log in without a password)."""
from __future__ import annotations

import json
import threading

from schemas import credentials


def test_readers_never_see_a_half_written_file(tmp_path, monkeypatch):
    path = tmp_path / credentials.FILE_NAME
    monkeypatch.setenv(credentials.ENV, str(path))
    first = credentials.ensure(path, {"127.0.0.1:1": "default"})["127.0.0.1:1"]["password"]
    seen, stop = [], threading.Event()

    def read():
        while not stop.is_set():
            seen.append(credentials.lookup("127.0.0.1:1").get("password"))
    t = threading.Thread(target=read)
    t.start()
    try:
        for i in range(300):            # each call adds an address: the file is rewritten every time
            credentials.ensure(path, {"127.0.0.1:1": "default", f"127.0.0.1:{1000 + i}": ""})
    finally:
        stop.set()
        t.join()
    assert len(seen) > 100 and set(seen) == {first}
    assert oct(path.stat().st_mode & 0o777) == "0o600" and len(json.loads(path.read_text())) == 301
    assert not list(tmp_path.glob(".*.tmp"))


def test_an_unchanged_file_is_not_rewritten(tmp_path):
    path = tmp_path / credentials.FILE_NAME
    credentials.ensure(path, {"127.0.0.1:1": ""})
    before = path.stat().st_mtime_ns, path.stat().st_ino
    credentials.ensure(path, {"127.0.0.1:1": ""})
    assert (path.stat().st_mtime_ns, path.stat().st_ino) == before
