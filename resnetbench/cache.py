"""The on-disk artifact cache: made once, keyed by everything that determines them.

A key is a hash of a JSON description (architecture, weights id, compression and its
settings, dtype, backend, input size, library versions). Each entry is a directory
holding the artifact's files, ``meta.json`` and ``manifest.json``. The modification time
of ``meta.json`` records the last use, for least-recently-used eviction. Under
pytest-xdist two workers may want one entry (the trained weights many cases share):
a lock file per entry (in ``.locks``) makes the second wait for the first's build and use it.

The cache directory is untrusted input: it is shared between users or restored by CI
(``actions/cache``), and its files include code (an AOTInductor package's shared
library, a TorchScript archive). So an entry is built in a temporary directory, its
manifest (the sha256 and size of every file of the entry, ``meta.json`` included)
signed with an HMAC whose key lives outside the cache (``RESNETBENCH_CACHE_KEY``, else a
random key made once in ``$XDG_CONFIG_HOME/resnetbench/cache-key``, mode 0600) and
written into it, and the directory renamed into place. Before anything of an entry is
read, ``get_or_build`` checks the signature and every file against the manifest; an
entry that fails (a file replaced, truncated, added or missing, a manifest rewritten
without the key, an entry made on another machine with another key, or by a version
that wrote no manifest) is rebuilt, never loaded, with a ``CacheIntegrityWarning`` that
names the entry and the file. A process verifies a large file once: later uses of the
entry in the same process re-hash only files whose inode, size or change time moved.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import hmac
import json
import os
import secrets
import shutil
import stat
import tempfile
import time
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from filelock import FileLock

CACHE_ENV = "RESNETBENCH_CACHE"
KEY_ENV = "RESNETBENCH_CACHE_KEY"
KEY_FILE = "cache-key"
META = "meta.json"
MANIFEST = "manifest.json"
MANIFEST_FORMAT = 1
MANIFEST_MAX_BYTES = 4 << 20  # a manifest lists a few files; anything larger is not ours
# Files at least this large are hashed once per process (then their stat is compared);
# smaller ones, meta.json among them (touched on every use), are hashed at every use.
REHASH_BELOW_BYTES = 1 << 20
# The key of a returned meta that holds the sha256 of each file of the entry, as verified
# (or written) by this process: what ``verified_copy`` checks a file against.
VERIFIED = "verified_sha256"


class CacheIntegrityWarning(UserWarning):
    """A cache entry failed its manifest check and was rebuilt instead of loaded."""


class CacheIntegrityError(RuntimeError):
    """A file changed between its manifest check and its load (it is not loaded)."""


class CacheKeyError(RuntimeError):
    """The cache key file exists but cannot be trusted (not ours, readable by others, empty)."""


def default_cache_dir() -> Path:
    """``$RESNETBENCH_CACHE`` or ``.resnetbench-cache`` in the current directory."""
    return Path(os.environ.get(CACHE_ENV) or ".resnetbench-cache").resolve()


def key_file() -> Path:
    """Where the machine's cache key lives: ``$XDG_CONFIG_HOME/resnetbench/cache-key`` (default ``~/.config``)."""
    config = os.environ.get("XDG_CONFIG_HOME", "")
    base = Path(config) if config and os.path.isabs(config) else Path.home() / ".config"  # XDG: relative is ignored
    return base / "resnetbench" / KEY_FILE


def cache_key_bytes() -> bytes:
    """The HMAC key: ``$RESNETBENCH_CACHE_KEY`` when set and not empty (CI passes a secret),
    else this user's key file, made with a random key on first use.

    Copying the file's text into ``RESNETBENCH_CACHE_KEY`` on another machine gives the
    same key (a cache restored without it is rebuilt, entry by entry).
    """
    env = os.environ.get(KEY_ENV, "").strip()
    if env:
        return env.encode()
    return _key_from_file(str(key_file()))


@functools.cache
def _key_from_file(path_text: str) -> bytes:
    path = Path(path_text)
    if not path.exists() and not path.is_symlink():
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        tmp = path.with_name(f".{KEY_FILE}.{os.getpid()}.{secrets.token_hex(4)}")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), 0o600)
        try:
            with os.fdopen(fd, "w", encoding="ascii") as fh:
                fh.write(secrets.token_hex(32) + "\n")
                fh.flush()
                os.fsync(fh.fileno())
            try:
                os.link(tmp, path)  # atomic, and never replaces a key another process made first
            except FileExistsError:
                pass
        finally:
            tmp.unlink(missing_ok=True)
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    except OSError as exc:
        raise CacheKeyError(f"{path}: cannot open the cache key ({exc}); remove it to make a new one, "
                            f"or set {KEY_ENV}") from None
    with os.fdopen(fd, "r", encoding="utf-8") as fh:
        st = os.fstat(fh.fileno())
        problem = None
        if not stat.S_ISREG(st.st_mode):
            problem = "is not a regular file"
        elif hasattr(os, "getuid") and st.st_uid != os.getuid():
            problem = f"belongs to uid {st.st_uid}, not to this user"
        elif st.st_mode & 0o077:
            problem = f"has mode {stat.S_IMODE(st.st_mode):04o}: others may read or change it (chmod 600 it if it never left you)"
        text = fh.read().strip() if problem is None else ""
    if problem is None and not text:
        problem = "is empty"
    if problem is not None:
        raise CacheKeyError(f"cache key {path} {problem}; remove it to make a new one, or set {KEY_ENV}")
    return text.encode()


@contextlib.contextmanager
def verified_copy(entry: Path, rel: str, meta: dict[str, Any]) -> Iterator[Path]:
    """A private copy of an entry's file, hashed while it is copied and checked against the
    digest the manifest check gave (``meta`` from ``get_or_build``): for files a loader runs
    as code (an AOTInductor package's shared library, a TorchScript archive), so that what
    is loaded is what was verified even if the cache changes after the check. Removed on exit.
    """
    want = (meta.get(VERIFIED) or {}).get(rel)
    if not isinstance(want, str):
        raise CacheIntegrityError(f"{entry / rel}: no verified digest (load it through ArtifactCache.get_or_build)")
    with tempfile.TemporaryDirectory(prefix="resnetbench-load-") as private:  # mode 0700
        dst = Path(private) / Path(rel).name
        digest = hashlib.sha256()
        with open(entry / rel, "rb") as src, open(dst, "wb") as out:
            while chunk := src.read(1 << 20):
                digest.update(chunk)
                out.write(chunk)
        if not hmac.compare_digest(digest.hexdigest(), want):
            raise CacheIntegrityError(f"cache entry {entry.parent.name}/{entry.name}: {rel} changed after its manifest "
                                      "was checked; not loaded")
        yield dst


def _touch(meta_file: Path) -> None:
    # Explicit nanosecond times: the file system's own clock ticks coarsely (a few ms),
    # which would tie entries made or used in quick succession.
    now = time.time_ns()
    os.utime(meta_file, ns=(now, now))


def cache_key(description: dict[str, Any]) -> str:
    """A short content hash of a JSON-serialisable description."""
    blob = json.dumps(description, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


def file_sha256(path: Path) -> str:
    with open(path, "rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


def _signed_body(body: dict[str, Any]) -> bytes:
    return json.dumps(body, sort_keys=True, separators=(",", ":")).encode()


def _key_id(key: bytes) -> str:
    """A short public name of a key (for messages): which key signed, never the key."""
    return hmac.new(key, b"resnetbench cache key id", hashlib.sha256).hexdigest()[:12]


def _entry_files(path: Path) -> tuple[dict[str, os.stat_result], str | None]:
    """Every file under an entry (relative POSIX paths) with its stat; a problem (a link,
    a special file) instead of trusting it."""
    files: dict[str, os.stat_result] = {}
    for dirpath, dirnames, filenames in os.walk(path, followlinks=False):
        for name in [*dirnames, *filenames]:
            full = Path(dirpath) / name
            rel = full.relative_to(path).as_posix()
            st = full.lstat()
            if stat.S_ISLNK(st.st_mode):
                return files, f"{rel} is a symbolic link"
            if stat.S_ISDIR(st.st_mode):
                continue
            if not stat.S_ISREG(st.st_mode):
                return files, f"{rel} is not a regular file"
            files[rel] = st
    return files, None


# Per process: entry dir -> (its manifest's signature, the stamps of its files as hashed and
# found good). A file whose stamp has not moved since is not hashed again in this process.
_VERIFIED: dict[Path, tuple[str, dict[str, tuple[int, ...]]]] = {}


def _stamp(st: os.stat_result) -> tuple[int, ...]:
    """What changes when a file is replaced or rewritten (change time cannot be set back)."""
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


class ArtifactCache:
    """Directory entries under ``root``; ``get_or_build`` makes an entry once.

    ``key`` signs and checks the entries' manifests; by default ``cache_key_bytes()``,
    read when first needed.
    """

    def __init__(self, root: Path, max_bytes: int | None = None, key: bytes | None = None) -> None:
        self.root = Path(root)
        self.max_bytes = max_bytes
        self.hits = 0
        self.misses = 0  # builds, rebuilds of entries that failed their check included
        self.rebuilds: list[str] = []  # one message per entry rebuilt because it failed its check
        self.verify_s = 0.0  # time spent checking entries against their manifests
        self._key = key

    @property
    def key(self) -> bytes:
        if self._key is None:
            self._key = cache_key_bytes()
        return self._key

    def entry(self, kind: str, name: str, description: dict[str, Any]) -> Path:
        return self.root / kind / f"{name}-{cache_key(description)}"

    def has(self, kind: str, name: str, description: dict[str, Any]) -> bool:
        """Whether a complete entry that passes its check exists (its build would be skipped)."""
        return self.check(self.entry(kind, name, description))[0] is not None

    def verify(self, kind: str, name: str, description: dict[str, Any]) -> str | None:
        """Why the entry would be rebuilt (None: it would be used as it is)."""
        return self.check(self.entry(kind, name, description))[1]

    def get_or_build(
        self,
        kind: str,
        name: str,
        description: dict[str, Any],
        build: Callable[[Path], dict[str, Any]],
    ) -> tuple[Path, dict[str, Any]]:
        """Return (entry dir, meta); ``build(dir)`` writes the files and returns meta.

        A hit is an entry whose manifest verifies; any other existing entry is rebuilt
        (``CacheIntegrityWarning``, and its message in ``rebuilds``).
        """
        path = self.entry(kind, name, description)
        meta_file = path / META
        cached = self._hit(path)
        if cached is not None:
            return path, cached
        with self._lock(path):
            meta, reason = self.check(path)  # another worker built it while this one waited
            if meta is not None:
                return path, self._used(meta_file, meta)
            self.misses += 1
            if reason is not None:
                self._report_rebuild(path, reason)
            tmp = path.with_name(path.name + f".tmp{os.getpid()}")
            shutil.rmtree(tmp, ignore_errors=True)
            tmp.mkdir(parents=True)
            try:
                meta = build(tmp)
                meta = {**meta, "description": description, "created": time.time()}
                (tmp / META).write_text(json.dumps(meta, default=str, indent=1), encoding="utf-8")
                digests, signature, stamps = self._write_manifest(tmp, path)
                if path.is_symlink() or path.is_file():
                    path.unlink()
                shutil.rmtree(path, ignore_errors=True)  # an incomplete or rejected entry
                tmp.rename(path)
            except BaseException:
                shutil.rmtree(tmp, ignore_errors=True)
                raise
        _VERIFIED[path] = (signature, stamps)  # hashed as it was written: the rename keeps the stamps
        _touch(meta_file)
        self.evict(keep=path)
        out = {**meta, "cached": False, VERIFIED: digests}
        if reason is not None:
            out["rebuilt"] = reason
        return path, out

    def discard(self, path: Path, reason: str) -> None:
        """Remove an entry its user found unusable (the next ``get_or_build`` makes it again), saying why."""
        with self._lock(path):
            self._report_rebuild(path, reason)
            shutil.rmtree(path, ignore_errors=True)
            _VERIFIED.pop(path, None)

    def _lock(self, path: Path) -> FileLock:
        """The entry's lock file, beside the entries (in ``.locks``), not among them."""
        locks = self.root / ".locks"
        locks.mkdir(parents=True, exist_ok=True)
        lock_path = locks / f"{path.parent.name}-{path.name}.lock"
        if lock_path.is_symlink():  # the lock is opened for writing: never through a planted link
            lock_path.unlink()
        return FileLock(str(lock_path))

    def _hit(self, path: Path) -> dict[str, Any] | None:
        meta, _ = self.check(path)
        return None if meta is None else self._used(path / META, meta)

    def _used(self, meta_file: Path, meta: dict[str, Any]) -> dict[str, Any]:
        self.hits += 1
        _touch(meta_file)
        return {**meta, "cached": True}

    def _report_rebuild(self, path: Path, reason: str) -> None:
        message = f"cache entry {path.parent.name}/{path.name} rebuilt, not loaded: {reason}"
        self.rebuilds.append(message)
        with warnings.catch_warnings():
            # A rebuild is the remedy, not a failure: shown in pytest's warnings summary even
            # where the run turns warnings into errors (this project's own filterwarnings).
            warnings.simplefilter("always", CacheIntegrityWarning)
            warnings.warn(message, CacheIntegrityWarning, stacklevel=3)

    # --- manifests -------------------------------------------------------------------

    def _entry_id(self, path: Path) -> str:
        return f"{path.parent.name}/{path.name}"

    def _write_manifest(self, tmp: Path, final: Path) -> tuple[dict[str, str], str, dict[str, tuple[int, ...]]]:
        """Hash every file of the new entry, sign the list, write it; returns the digests, the
        signature and the files' stamps."""
        files, problem = _entry_files(tmp)
        if problem is not None:
            raise ValueError(f"cache entry {self._entry_id(final)}: {problem} (an entry holds regular files only)")
        files.pop(MANIFEST, None)
        digests = {rel: file_sha256(tmp / rel) for rel in sorted(files)}
        body = {
            "format": MANIFEST_FORMAT,
            "entry": self._entry_id(final),  # a signed entry copied under another key's name fails
            "files": {rel: {"sha256": digests[rel], "bytes": files[rel].st_size} for rel in digests},
            "key_id": _key_id(self.key),
        }
        signature = hmac.new(self.key, _signed_body(body), hashlib.sha256).hexdigest()
        (tmp / MANIFEST).write_text(json.dumps({**body, "hmac_sha256": signature}, indent=1), encoding="utf-8")
        return digests, signature, {rel: _stamp(st) for rel, st in files.items()}

    def check(self, path: Path) -> tuple[dict[str, Any] | None, str | None]:
        """(meta, None) when the entry at ``path`` is complete and every file matches its signed
        manifest; (None, why) when it exists but fails; (None, None) when there is none."""
        start = time.perf_counter()
        try:
            return self._check(path)
        finally:
            self.verify_s += time.perf_counter() - start

    def _check(self, path: Path) -> tuple[dict[str, Any] | None, str | None]:
        if not os.path.lexists(path):
            return None, None
        if path.is_symlink() or not path.is_dir():
            return None, "the entry is not a directory (a link or a file)"
        manifest_file = path / MANIFEST
        try:
            st = manifest_file.lstat()
        except FileNotFoundError:
            return None, (f"{MANIFEST} is missing (a writer that died, an older resnetbench, "
                          "or files put there by hand)")
        if not stat.S_ISREG(st.st_mode) or st.st_size > MANIFEST_MAX_BYTES:
            return None, f"{MANIFEST} is not a regular file of a manifest's size"
        try:
            manifest = json.loads(manifest_file.read_bytes())
            signature = manifest.pop("hmac_sha256")
            listed = manifest["files"]
            if not (isinstance(signature, str) and isinstance(listed, dict)
                    and all(isinstance(v, dict) and isinstance(v.get("sha256"), str) and isinstance(v.get("bytes"), int)
                            for v in listed.values())):
                raise ValueError("malformed")
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            return None, f"{MANIFEST} is unreadable or malformed"
        expected = hmac.new(self.key, _signed_body(manifest), hashlib.sha256).hexdigest()
        if not hmac.compare_digest(expected, signature):
            signer = manifest.get("key_id")
            ours = _key_id(self.key)
            hint = (f" (signed by key {signer}, this run's key is {ours}: a cache made on another machine is "
                    f"rebuilt unless both share {KEY_ENV})" if isinstance(signer, str) and signer != ours else
                    " (the manifest was changed after it was signed)")
            return None, f"{MANIFEST}'s signature does not verify with this run's cache key{hint}"
        if manifest.get("format") != MANIFEST_FORMAT or manifest.get("entry") != self._entry_id(path):
            return None, f"{MANIFEST} describes entry {manifest.get('entry')!r}, not this one"
        files, problem = _entry_files(path)
        if problem is not None:
            return None, problem
        files.pop(MANIFEST, None)
        missing, added = sorted(set(listed) - set(files)), sorted(set(files) - set(listed))
        if missing:
            return None, f"{missing[0]} is missing"
        if added:
            return None, f"{added[0]} is not in the manifest (added after the entry was made)"
        if META not in listed:
            return None, f"{META} is missing"
        previous = _VERIFIED.get(path)
        stamps = previous[1] if previous is not None and previous[0] == signature else {}
        good: dict[str, tuple[int, ...]] = {}
        meta_bytes = b""
        for rel, st in sorted(files.items()):
            want = listed[rel]
            if st.st_size != want["bytes"]:
                return None, f"{rel} has {st.st_size} bytes, its manifest says {want['bytes']} (truncated or replaced)"
            stamp = _stamp(st)
            if rel == META:  # hashed and parsed from the same bytes
                meta_bytes = (path / META).read_bytes()
                digest = hashlib.sha256(meta_bytes).hexdigest()
            elif st.st_size < REHASH_BELOW_BYTES or stamps.get(rel) != stamp:
                digest = file_sha256(path / rel)
            else:
                digest = want["sha256"]  # verified by this process, and unchanged on disk since
            if not hmac.compare_digest(digest, want["sha256"]):
                return None, f"{rel} does not match its sha256 in the manifest (changed after the entry was made)"
            good[rel] = stamp
        try:
            meta = json.loads(meta_bytes)
        except ValueError:
            return None, f"{META} is unreadable"
        if not isinstance(meta, dict):
            return None, f"{META} is not an object"
        _VERIFIED[path] = (signature, good)
        return {**meta, VERIFIED: {rel: want["sha256"] for rel, want in listed.items()}}, None

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
            _VERIFIED.pop(entry, None)
            total -= size

    def clear(self) -> int:
        """Remove everything; returns the bytes freed."""
        size = self.size_bytes()
        shutil.rmtree(self.root, ignore_errors=True)
        return size
