"""The artifact cache: built once, rebuilt when incomplete, evicted least-recently-used first."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from resnetbench.cache import CACHE_ENV, ArtifactCache, CacheIntegrityWarning, cache_key, default_cache_dir


class Builder:
    """A build function that writes ``nbytes`` into ``model.bin`` and counts its calls."""

    def __init__(self, nbytes: int = 100, fail: bool = False) -> None:
        self.nbytes = nbytes
        self.fail = fail
        self.calls = 0

    def __call__(self, out: Path) -> dict[str, Any]:
        self.calls += 1
        (out / "model.bin").write_bytes(b"x" * self.nbytes)
        if self.fail:
            raise RuntimeError("export crashed")
        return {"files": ["model.bin"], "call": self.calls}


def disk_bytes(root: Path) -> int:
    """Bytes of every file under ``root``, walked with os.walk (independent of the cache's own count)."""
    return sum(os.path.getsize(os.path.join(d, f)) for d, _, files in os.walk(root) for f in files)


DESC = {"arch": "resnet18", "weights": "random:0", "compression": "none", "backend": "eager"}


def test_builds_once_then_hits(tmp_path: Path) -> None:
    cache = ArtifactCache(tmp_path)
    build = Builder()
    path1, meta1 = cache.get_or_build("models", "resnet18-none", DESC, build)
    path2, meta2 = cache.get_or_build("models", "resnet18-none", dict(DESC), build)
    assert build.calls == 1
    assert path1 == path2 and path1.is_dir()
    assert (path1 / "model.bin").read_bytes() == b"x" * 100
    assert meta1["cached"] is False and meta2["cached"] is True
    assert meta2["call"] == 1 and meta2["description"] == DESC
    assert (cache.hits, cache.misses) == (1, 1)


def test_a_fresh_cache_object_finds_earlier_entries(tmp_path: Path) -> None:
    build = Builder()
    ArtifactCache(tmp_path).get_or_build("models", "m", DESC, build)
    _, meta = ArtifactCache(tmp_path).get_or_build("models", "m", DESC, build)
    assert build.calls == 1 and meta["cached"] is True


def test_key_ignores_dict_order_but_not_values(tmp_path: Path) -> None:
    reordered = dict(reversed(list(DESC.items())))
    assert cache_key(reordered) == cache_key(DESC)
    assert cache_key({**DESC, "backend": "onnxruntime"}) != cache_key(DESC)
    assert cache_key({**DESC, "versions": {"torch": "2.14.1"}}) != cache_key({**DESC, "versions": {"torch": "2.14.0"}})


def test_different_descriptions_get_different_entries(tmp_path: Path) -> None:
    cache = ArtifactCache(tmp_path)
    build = Builder()
    a, _ = cache.get_or_build("artifacts", "case", DESC, build)
    b, meta_b = cache.get_or_build("artifacts", "case", {**DESC, "backend": "onnxruntime"}, build)
    c, _ = cache.get_or_build("artifacts", "case", dict(reversed(list(DESC.items()))), build)
    assert build.calls == 2
    assert a != b and a == c
    assert meta_b["cached"] is False
    assert sorted(p.name for p in (tmp_path / "artifacts").iterdir()) == sorted([a.name, b.name])


def test_failed_build_leaves_no_entry(tmp_path: Path) -> None:
    cache = ArtifactCache(tmp_path)
    failing = Builder(fail=True)
    with pytest.raises(RuntimeError, match="export crashed"):
        cache.get_or_build("models", "m", DESC, failing)
    assert not cache.entry("models", "m", DESC).exists()
    assert list((tmp_path / "models").iterdir()) == []  # no temporary directory left behind either
    ok = Builder()
    path, meta = cache.get_or_build("models", "m", DESC, ok)
    assert ok.calls == 1 and meta["cached"] is False and (path / "meta.json").is_file()


def test_half_written_entry_is_rebuilt(tmp_path: Path) -> None:
    cache = ArtifactCache(tmp_path)
    entry = cache.entry("models", "m", DESC)
    entry.mkdir(parents=True)
    (entry / "model.bin").write_bytes(b"torn")  # a writer died before meta.json
    (entry / "stale.tmp").write_bytes(b"junk")
    build = Builder()
    with pytest.warns(CacheIntegrityWarning, match="manifest.json is missing"):
        path, meta = cache.get_or_build("models", "m", DESC, build)
    assert build.calls == 1 and meta["cached"] is False
    assert path == entry
    assert (path / "model.bin").read_bytes() == b"x" * 100
    assert not (path / "stale.tmp").exists()


def test_unreadable_meta_is_rebuilt(tmp_path: Path) -> None:
    cache = ArtifactCache(tmp_path)
    build = Builder()
    path, _ = cache.get_or_build("models", "m", DESC, build)
    (path / "meta.json").write_text('{"files": ["model', encoding="utf-8")
    with pytest.warns(CacheIntegrityWarning, match="meta.json has 17 bytes"):
        _, meta = cache.get_or_build("models", "m", DESC, build)
    assert build.calls == 2 and meta["cached"] is False
    assert json.loads((path / "meta.json").read_text())["call"] == 2


def _fill(cache: ArtifactCache, build: Callable[[Path], dict[str, Any]], name: str) -> Path:
    path, _ = cache.get_or_build("models", name, {"name": name}, build)
    return path


def test_eviction_drops_least_recently_used(tmp_path: Path) -> None:
    unlimited = ArtifactCache(tmp_path)
    build = Builder(nbytes=10_000)
    a = _fill(unlimited, build, "a")
    one_entry = disk_bytes(tmp_path)
    assert 10_000 < one_entry < 11_000  # payload + meta.json
    # room for two entries, not three
    cache = ArtifactCache(tmp_path, max_bytes=2 * one_entry + 500)
    b = _fill(cache, build, "b")
    assert a.exists() and b.exists()
    _, meta = cache.get_or_build("models", "a", {"name": "a"}, build)  # use a: b is now the oldest
    assert meta["cached"] is True
    c = _fill(cache, build, "c")
    assert a.exists() and c.exists() and not b.exists()
    assert disk_bytes(tmp_path) <= cache.max_bytes
    # the evicted entry is simply built again
    calls = build.calls
    _fill(cache, build, "b")
    assert build.calls == calls + 1
    assert not a.exists()  # a was used before c, so it goes now


def test_eviction_keeps_the_entry_just_built(tmp_path: Path) -> None:
    cache = ArtifactCache(tmp_path, max_bytes=1_000)
    build = Builder(nbytes=5_000)
    first = _fill(cache, build, "first")
    assert first.exists() and (first / "model.bin").stat().st_size == 5_000
    second = _fill(cache, build, "second")
    assert second.exists() and not first.exists()


def test_no_eviction_without_limit(tmp_path: Path) -> None:
    cache = ArtifactCache(tmp_path)
    build = Builder(nbytes=50_000)
    paths = [_fill(cache, build, str(i)) for i in range(4)]
    assert all(p.exists() for p in paths)


def test_clear_returns_bytes_freed(tmp_path: Path) -> None:
    root = tmp_path / "cache"
    cache = ArtifactCache(root)
    _fill(cache, Builder(nbytes=1_234), "a")
    _fill(cache, Builder(nbytes=4_321), "b")
    on_disk = disk_bytes(root)
    assert on_disk > 1_234 + 4_321
    assert cache.size_bytes() == on_disk
    assert cache.clear() == on_disk
    assert not root.exists()
    assert cache.clear() == 0
    assert cache.size_bytes() == 0


def test_default_cache_dir_from_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "c"))
    assert default_cache_dir() == (tmp_path / "c").resolve()
    monkeypatch.delenv(CACHE_ENV)
    monkeypatch.chdir(tmp_path)
    assert default_cache_dir() == (tmp_path / ".resnetbench-cache").resolve()


BUILD_IN_CHILD = """
import sys, time
from pathlib import Path
from resnetbench.cache import ArtifactCache

def build(out):
    with open(sys.argv[2], "a") as fh:
        fh.write("built\\n")
    time.sleep(1.0)
    (out / "w.bin").write_bytes(b"w")
    return {"files": ["w.bin"]}

path, meta = ArtifactCache(Path(sys.argv[1])).get_or_build("weights", "shared", {"k": 1}, build)
print(meta["cached"], (path / "w.bin").read_bytes().decode())
"""


def test_two_processes_wanting_one_entry_build_it_once(tmp_path):
    """pytest-xdist workers: the second waits for the first's build instead of repeating or deleting it."""
    import subprocess
    import sys

    log = tmp_path / "builds.log"
    procs = [subprocess.Popen([sys.executable, "-c", BUILD_IN_CHILD, str(tmp_path / "c"), str(log)],
                              stdout=subprocess.PIPE, text=True) for _ in range(2)]
    outputs = sorted(p.communicate(timeout=60)[0].strip() for p in procs)
    assert [p.returncode for p in procs] == [0, 0]
    assert outputs == ["False w", "True w"]
    assert log.read_text() == "built\n"
