import sqlite3
import subprocess
import sys

import pytest

from qua2.errors import Qua2Error
from qua2.study.store import SCHEMA_VERSION, Store


def entries(n, kind="random"):
    return [(f"id{i}", kind, {"version": 1, "layers": {"a": "uaq-w3"}}, 3.0, {}) for i in range(n)]


def test_add_is_idempotent(tmp_path):
    with Store(tmp_path / "s.sqlite") as store:
        assert store.add(entries(3)) == 3
        assert store.add(entries(5)) == 2
        assert store.counts() == {"pending": 5, "running": 0, "done": 0, "failed": 0}


def test_claim_finish_fail(tmp_path):
    with Store(tmp_path / "s.sqlite") as store:
        store.add(entries(2))
        row = store.claim()
        assert row.id == "id0" and row.status == "running"
        store.finish(row.id, {"fid": 1.5}, {"generate": 0.1})
        row2 = store.claim()
        store.fail(row2.id, "NaN in images")
        assert store.claim() is None
        assert store.get("id0").metrics == {"fid": 1.5}
        assert store.get("id1").error == "NaN in images"


def test_claim_filters_by_kind(tmp_path):
    with Store(tmp_path / "s.sqlite") as store:
        store.add([*entries(2), ("s0", "sweep", {}, None, {"layer": "a"})])
        assert store.claim(kinds=["sweep"]).tags == {"layer": "a"}


def test_rows_of_dead_workers_are_recovered(tmp_path):
    path = tmp_path / "s.sqlite"
    with Store(path) as store:
        store.add(entries(2))
    # A separate process claims a row and dies without finishing it.
    code = f"from qua2.study.store import Store; Store({str(path)!r}).claim()"
    subprocess.run([sys.executable, "-c", code], check=True)
    with Store(path) as store:
        assert store.counts()["running"] == 1
        assert store.recover_abandoned() == 1
        assert store.counts()["pending"] == 2
        store.claim()
        assert store.recover_abandoned() == 0  # our own claim: this process is alive


def test_schema_mismatch_is_clear(tmp_path):
    path = tmp_path / "s.sqlite"
    Store(path).close()
    db = sqlite3.connect(path)
    db.execute(f"PRAGMA user_version={SCHEMA_VERSION + 1}")
    db.close()
    with pytest.raises(Qua2Error, match="schema"):
        Store(path)
