"""Many processes, one cache: two processes that need the same image store build it once, `medtune cache clean`
never removes an entry in use, and ``--older-than`` and ``--all`` remove what they say (real processes, real
stores of real images)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time

import pytest

from medtune.data.readers import read_table
from medtune.data.store import StoreSpec, open_store
from medtune.errors import ConfigError
from medtune.runs.cache import clean_cache, list_cache
from tests.conftest import REPO, medtune, shared_path

BUILD = """
    import sys, time
    from medtune.data.readers import read_table
    from medtune.data.store import StoreSpec, open_store
    table = read_table({data!r})
    table = table.with_frame(table.frame.iloc[:{rows}])
    print("start", time.time(), flush=True)
    store = open_store(table, StoreSpec(size={size}), cache_dir={cache!r}, workers=0, progress=False)
    print("store", store.path, time.time(), flush=True)
    time.sleep({hold})
"""


def _start(tmp_path, rows=400, size=128, hold=0.0):
    code = BUILD.format(data=str(shared_path("cxr3")), rows=rows, size=size, cache=str(tmp_path / "stores"),
                        hold=hold)  # fmt: skip
    env = {**os.environ, "MEDTUNE_CACHE": str(tmp_path)}
    return subprocess.Popen([sys.executable, "-c", textwrap.dedent(code)], cwd=REPO, env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)  # fmt: skip


def _wait_for(condition, what, seconds=120):
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.01)


def test_two_processes_needing_one_store_build_it_once(tmp_path):
    first, second = _start(tmp_path, rows=1124), _start(tmp_path, rows=1124)  # started together
    (out1, err1), (out2, err2) = first.communicate(timeout=300), second.communicate(timeout=300)
    assert first.returncode == 0 and second.returncode == 0, err1 + err2
    path1, path2 = out1.split("store ")[1].split()[0], out2.split("store ")[1].split()[0]
    assert path1 == path2
    waited = ["waiting for another process building the image store" in err for err in (err1, err2)]
    assert sorted(waited) == [False, True], (err1, err2)  # one built, the other waited for it and opened it
    built = [p for p in (tmp_path / "stores").iterdir() if not p.name.startswith(".")]
    assert len(built) == 1  # one store, and no second build left behind


def test_clean_never_removes_a_store_in_use(tmp_path):
    holder = _start(tmp_path, rows=40, size=32, hold=60)
    _wait_for(lambda: holder.stdout.readline().startswith("store"), "the store to open")
    [entry] = [e for e in list_cache(tmp_path) if e.kind == "stores"]
    assert entry.in_use
    removed, busy = clean_cache(everything=True, root=tmp_path)
    assert [e.path for e in busy] == [entry.path] and entry.path.is_dir() and not removed
    holder.kill()
    holder.wait()
    removed, busy = clean_cache(everything=True, root=tmp_path)
    assert [e.path for e in removed] == [entry.path] and not busy and not entry.path.exists()


def test_clean_older_than_removes_only_entries_unused_for_that_long(tmp_path):
    table = read_table(shared_path("cxr3"))
    old = open_store(table.with_frame(table.frame.iloc[:20]), StoreSpec(size=32), tmp_path / "stores", 0, False)
    new = open_store(table.with_frame(table.frame.iloc[20:40]), StoreSpec(size=32), tmp_path / "stores", 0, False)
    old.release()
    new.release()
    month_ago = time.time() - 31 * 86_400
    for path in (old.path, old.path.with_name(f".{old.path.name}.lock")):
        os.utime(path, (month_ago, month_ago))
    leftover = tmp_path / "stores" / ".build-999999999-dead"  # a build whose process is gone
    leftover.mkdir()
    removed, busy = clean_cache(older_than=30 * 86_400, root=tmp_path)
    assert {e.path for e in removed} == {old.path, leftover} and not busy
    assert new.path.is_dir() and not old.path.exists() and not leftover.exists()
    with pytest.raises(ConfigError, match="--older-than AGE"):
        clean_cache(root=tmp_path)


def test_cache_commands_list_and_clean(tmp_path, monkeypatch):
    monkeypatch.setenv("MEDTUNE_CACHE", str(tmp_path))
    table = read_table(shared_path("cxr3"))
    open_store(table.with_frame(table.frame.iloc[:20]), StoreSpec(size=32), None, 0, False).release()
    listed = medtune("cache", "list")
    assert listed.returncode == 0 and "stores" in listed.stdout and "1 entries" in listed.stdout
    printed = json.loads(medtune("cache", "list", "--json").stdout)
    assert [e["kind"] for e in printed["entries"]] == ["stores"] and printed["entries"][0]["bytes"] > 0
    cleaned = medtune("cache", "clean", "--all")
    assert cleaned.returncode == 0 and "removed 1 entries" in cleaned.stdout
    refused = medtune("cache", "clean", "--older-than", "soon")
    assert refused.returncode != 0 and "expected a number and a unit" in refused.stderr
