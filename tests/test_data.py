"""tests/data: every capture kept in the repository is listed in its MANIFEST.tsv (source,
licence, size, sha256), and every listed file is there unchanged."""
from __future__ import annotations

import csv
import hashlib

from tests.support import TEST_DATA


def test_every_file_is_in_the_manifest_with_its_size_and_hash():
    rows = {r["file"]: r for r in csv.DictReader(open(TEST_DATA / "MANIFEST.tsv"), delimiter="\t")}
    files = {p.name for p in TEST_DATA.iterdir()} - {"MANIFEST.tsv"}
    assert files == set(rows)
    for name, r in rows.items():
        data = (TEST_DATA / name).read_bytes()
        assert (len(data), hashlib.sha256(data).hexdigest()) == (int(r["bytes"]), r["sha256"]), name
        assert r["source_repo@commit and path"] and r["license (as stated in repo)"], name
