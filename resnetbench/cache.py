"""The on-disk artifact cache: made once, keyed by everything that determines them.

A key is a hash of a JSON description (architecture, weights id, compression and its
settings, dtype, backend, input size, library versions). Each entry is a directory
holding the artifact's files and ``meta.json``; an entry without a readable
``meta.json`` is incomplete (its writer died) and is rebuilt. The modification time of
``meta.json`` records the last use, for least-recently-used eviction. Under
pytest-xdist two workers may want one entry (the trained weights many cases share):
a lock file per entry (in ``.locks``) makes the second wait for the first's build and use it.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from filelock import FileLock

CACHE_ENV = "RESNETBENCH_CACHE"
META = "meta.json"


def default_cache_dir() -> Path:
    """``$RESNETBENCH_CACHE`` or ``.resnetbench-cache`` in the current directory."""
    return Path(os.environ.get(CACHE_ENV) or ".resnetbench-cache").resolve()


def _touch(meta_file: Path) -> None:
    # Explicit nanosecond times: the file system's own clock ticks coarsely (a few ms),
    # which would tie entries made or used in quick succession.
    now = time.time_ns()
    os.utime(meta_file, ns=(now, now))


def _read_meta(meta_file: Path) -> dict[str, Any] | None:
    """The entry's metadata, or None when it is missing or unreadable (a torn write)."""
    try:
        meta = json.loads(meta_file.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return meta if isinstance(meta, dict) else None


def cache_key(description: dict[str, Any]) -> str:
    """A short content hash of a JSON-serialisable description."""
    blob = json.dumps(description, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


class ArtifactCache:
    """Directory entries under ``root``; ``get_or_build`` makes an entry once."""

    def __init__(self, root: Path, max_bytes: int | None = None) -> None:
        self.root = Path(root)
        self.max_bytes = max_bytes
        self.hits = 0
        self.misses = 0

    def entry(self, kind: str, name: str, description: dict[str, Any]) -> Path:
        return self.root / kind / f"{name}-{cache_key(description)}"

    def has(self, kind: str, name: str, description: dict[str, Any]) -> bool:
        """Whether a complete entry exists (its build would be skipped)."""
        return (self.entry(kind, name, description) / META).exists()

    def get_or_build(
        self,
        kind: str,
        name: str,
        description: dict[str, Any],
        build: Callable[[Path], dict[str, Any]],
    ) -> tuple[Path, dict[str, Any]]:
        """Return (entry dir, meta); ``build(dir)`` writes the files and returns meta."""
        path = self.entry(kind, name, description)
        meta_file = path / META
        cached = self._hit(meta_file)
        if cached is not None:
            return path, cached
        locks = self.root / ".locks"  # beside the entries, not among them
        locks.mkdir(parents=True, exist_ok=True)
        with FileLock(str(locks / f"{kind}-{path.name}.lock")):
            cached = self._hit(meta_file)  # another worker built it while this one waited
            if cached is not None:
                return path, cached
            self.misses += 1
            tmp = path.with_name(path.name + f".tmp{os.getpid()}")
            shutil.rmtree(tmp, ignore_errors=True)
            tmp.mkdir(parents=True)
            try:
                meta = build(tmp)
                meta = {**meta, "description": description, "created": time.time()}
                (tmp / META).write_text(json.dumps(meta, default=str, indent=1), encoding="utf-8")
                shutil.rmtree(path, ignore_errors=True)  # an incomplete entry a dead writer left
                tmp.rename(path)
            except BaseException:
                shutil.rmtree(tmp, ignore_errors=True)
                raise
        _touch(meta_file)
        self.evict(keep=path)
        return path, {**meta, "cached": False}

    def _hit(self, meta_file: Path) -> dict[str, Any] | None:
        cached = _read_meta(meta_file)
        if cached is None:
            return None
        self.hits += 1
        _touch(meta_file)
        return {**cached, "cached": True}

    def size_bytes(self) -> int:
        return sum(f.stat().st_size for f in self.root.rglob("*") if f.is_file()) if self.root.exists() else 0

    def evict(self, keep: Path | None = None) -> None:
        """Drop least recently used entries until the cache fits ``max_bytes``.

        ``keep`` (the entry just returned to a caller) is never dropped, even when it alone
        is larger than ``max_bytes``: its caller is about to read it.
        """
        if not self.max_bytes or not self.root.exists():
            return
        entries = [m.parent for m in self.root.glob(f"*/*/{META}") if m.parent != keep]
        entries.sort(key=lambda p: (p / META).stat().st_mtime_ns)
        total = self.size_bytes()
        for entry in entries:
            if total <= self.max_bytes:
                break
            size = sum(f.stat().st_size for f in entry.rglob("*") if f.is_file())
            shutil.rmtree(entry, ignore_errors=True)
            total -= size

    def clear(self) -> int:
        """Remove everything; returns the bytes freed."""
        size = self.size_bytes()
        shutil.rmtree(self.root, ignore_errors=True)
        return size
