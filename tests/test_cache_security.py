"""The artifact cache is untrusted input: nothing in it runs, nothing in it is used unchecked.

A cache directory is shared or restored by CI, so a file in it may have been put there by
someone else. These tests plant real payloads (a pickle whose unpickling creates a marker
file) where the suite keeps models and artifacts, truncate files, rewrite manifests
without the key, and check that each entry is rebuilt and named, never loaded, and that
the case still measures what it measured before. Transformed models (pruning,
distillation, BatchNorm folding) are stored as tensors and a JSON description: their
round trip is checked bit for bit.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import pickle
import re
import stat
from pathlib import Path
from typing import Any

import pytest
import torch
from conftest import by_id

from resnetbench import cache as cache_mod
from resnetbench.cache import (
    KEY_ENV,
    MANIFEST,
    ArtifactCache,
    CacheIntegrityError,
    CacheIntegrityWarning,
    CacheKeyError,
    cache_key_bytes,
    key_file,
    verified_copy,
)

KEY = b"resnetbench-tests-cache-key"


@pytest.fixture(autouse=True)
def private_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every test's key file (if one is made) lives under its own XDG_CONFIG_HOME, never ~/.config."""
    config = tmp_path / "xdg-config"
    monkeypatch.setenv("XDG_CONFIG_HOME", str(config))
    monkeypatch.delenv(KEY_ENV, raising=False)
    return config


class Payload:
    """What a planted pickle does: unpickling it calls ``os.mkdir(marker)``, i.e. runs code
    (an attacker's would call ``os.system``)."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self) -> tuple[Any, ...]:
        return (os.mkdir, (self.marker,))


def test_the_planted_payload_runs_when_unpickled(tmp_path: Path) -> None:
    """The payload is live: what the suite must never do to it creates the marker."""
    marker = tmp_path / "ran"
    pickle.loads(pickle.dumps(Payload(marker)))
    assert marker.is_dir()
    marker.rmdir()
    torch.save(Payload(marker), tmp_path / "module.pt")
    torch.load(tmp_path / "module.pt", weights_only=False)
    assert marker.is_dir()


# --- the key ----------------------------------------------------------------------------


def test_a_key_is_made_once_into_a_private_file(private_config: Path) -> None:
    key = cache_key_bytes()
    path = private_config / "resnetbench" / "cache-key"
    assert key_file() == path and path.is_file()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert len(key) == 64 and path.read_text().strip().encode() == key
    assert cache_key_bytes() == key  # made once, then read
    assert not [p for p in path.parent.iterdir() if p.name != "cache-key"], "no temporary file left"


def test_the_environment_key_wins(private_config: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(KEY_ENV, "a CI secret")
    assert cache_key_bytes() == b"a CI secret"
    assert not (private_config / "resnetbench").exists()
    monkeypatch.setenv(KEY_ENV, "")  # an unset secret (a fork's pull request) is no key: the file's
    assert cache_key_bytes() == key_file().read_text().strip().encode()


def test_a_key_file_others_may_read_is_refused(private_config: Path) -> None:
    path = private_config / "resnetbench" / "cache-key"
    path.parent.mkdir(parents=True)
    path.write_text("0123456789abcdef\n")
    path.chmod(0o644)
    with pytest.raises(CacheKeyError, match="mode 0644"):
        cache_key_bytes()


def test_relative_xdg_config_home_is_ignored(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("XDG_CONFIG_HOME", "relative/dir")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert key_file() == tmp_path / "home" / ".config" / "resnetbench" / "cache-key"


# --- entries and their manifests ----------------------------------------------------------


class Builder:
    """Writes ``model.bin`` (``nbytes``) and counts its calls."""

    def __init__(self, nbytes: int = 100) -> None:
        self.nbytes = nbytes
        self.calls = 0

    def __call__(self, out: Path) -> dict[str, Any]:
        self.calls += 1
        (out / "model.bin").write_bytes(bytes([self.calls % 256]) * self.nbytes)
        return {"files": ["model.bin"]}


DESC = {"arch": "resnet18", "backend": "eager"}


def _entry(tmp_path: Path, key: bytes = KEY, nbytes: int = 100) -> tuple[ArtifactCache, Builder, Path]:
    cache = ArtifactCache(tmp_path / "cache", key=key)
    build = Builder(nbytes)
    path, meta = cache.get_or_build("artifacts", "case", DESC, build)
    assert meta["cached"] is False and (path / MANIFEST).is_file()
    return cache, build, path


def _rebuilt(cache: ArtifactCache, build: Builder, match: str) -> dict[str, Any]:
    calls = build.calls
    with pytest.warns(CacheIntegrityWarning, match=match):
        _, meta = cache.get_or_build("artifacts", "case", DESC, build)
    assert build.calls == calls + 1 and meta["cached"] is False
    assert re.search(match, cache.rebuilds[-1]) and cache.rebuilds[-1].endswith(meta["rebuilt"])
    return meta


def test_an_entry_carries_a_signed_manifest_of_every_file(tmp_path: Path) -> None:
    cache, build, path = _entry(tmp_path)
    manifest = json.loads((path / MANIFEST).read_text())
    assert set(manifest["files"]) == {"model.bin", "meta.json"}
    assert manifest["files"]["model.bin"] == {"sha256": hashlib.sha256(bytes([1]) * 100).hexdigest(), "bytes": 100}
    assert manifest["entry"] == f"artifacts/{path.name}"
    _, meta = cache.get_or_build("artifacts", "case", DESC, build)
    assert meta["cached"] is True and build.calls == 1 and (cache.hits, cache.misses) == (1, 1)


@pytest.mark.parametrize("damage, match", [
    ("truncate", r"artifacts/case-\w+ rebuilt, not loaded: model\.bin has 50 bytes, its manifest says 100"),
    ("same size", r"model\.bin does not match its sha256"),
    ("meta", r"meta\.json"),
    ("extra file", r"module\.pt is not in the manifest"),
    ("missing file", r"model\.bin is missing"),
    ("symlink", r"model\.bin is a symbolic link"),
    ("no manifest", r"manifest\.json is missing"),
    ("garbled manifest", r"manifest\.json is unreadable or malformed"),
])
def test_a_damaged_entry_is_rebuilt_and_named(tmp_path: Path, damage: str, match: str) -> None:
    cache, build, path = _entry(tmp_path)
    model = path / "model.bin"
    if damage == "truncate":
        model.write_bytes(model.read_bytes()[:50])
    elif damage == "same size":
        model.write_bytes(b"\x00" * 100)
    elif damage == "meta":
        meta = json.loads((path / "meta.json").read_text())
        (path / "meta.json").write_text(json.dumps({**meta, "files": ["model.bin", "evil.so"]}))
    elif damage == "extra file":
        (path / "module.pt").write_bytes(pickle.dumps(Payload(tmp_path / "ran")))
    elif damage == "missing file":
        model.unlink()
    elif damage == "symlink":
        (tmp_path / "elsewhere").write_bytes(model.read_bytes())
        model.unlink()
        model.symlink_to(tmp_path / "elsewhere")
    elif damage == "no manifest":
        (path / MANIFEST).unlink()
    elif damage == "garbled manifest":
        (path / MANIFEST).write_text('{"files": {"model.bin"')
    _rebuilt(cache, build, match)
    assert (cache.hits, cache.misses) == (0, 2), "a rebuild counts as a build, not a hit"
    _, meta = cache.get_or_build("artifacts", "case", DESC, build)  # the rebuilt entry is good
    assert meta["cached"] is True and model.read_bytes() == bytes([2]) * 100
    assert not (tmp_path / "ran").exists()


def _forge(path: Path, key: bytes | None) -> None:
    """Rewrite the manifest to match the entry's files as they are now; sign it with ``key``
    (None: keep the old signature)."""
    manifest = json.loads((path / MANIFEST).read_text())
    for rel in manifest["files"]:
        data = (path / rel).read_bytes()
        manifest["files"][rel] = {"sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)}
    if key is not None:
        body = {k: v for k, v in manifest.items() if k != "hmac_sha256"}
        blob = json.dumps(body, sort_keys=True, separators=(",", ":")).encode()
        manifest["hmac_sha256"] = hmac.new(key, blob, hashlib.sha256).hexdigest()
    (path / MANIFEST).write_text(json.dumps(manifest))


@pytest.mark.parametrize("signed_with", [None, b"an attacker's guess"])
def test_a_manifest_rewritten_without_the_key_is_rebuilt(tmp_path: Path, signed_with: bytes | None) -> None:
    cache, build, path = _entry(tmp_path)
    (path / "model.bin").write_bytes(b"\x00" * 100)
    _forge(path, signed_with)
    _rebuilt(cache, build, r"manifest\.json's signature does not verify")
    _forge(path, KEY)  # the check itself: with the key, the same forgery would pass
    assert cache.get_or_build("artifacts", "case", DESC, build)[1]["cached"] is True


def test_an_entry_made_with_another_key_is_rebuilt(tmp_path: Path) -> None:
    """A cache restored on another machine (or by CI) without the same key is rebuilt, entry by entry."""
    _, build, path = _entry(tmp_path, key=b"the other machine's key")
    here = ArtifactCache(tmp_path / "cache", key=KEY)
    with pytest.warns(CacheIntegrityWarning, match=f"signed by key \\w+, this run's key is \\w+.*{KEY_ENV}"):
        _, meta = here.get_or_build("artifacts", "case", DESC, build)
    assert meta["cached"] is False and build.calls == 2


def test_a_signed_entry_moved_under_another_key_is_rebuilt(tmp_path: Path) -> None:
    cache, build, path = _entry(tmp_path)
    other = cache.entry("artifacts", "case", {**DESC, "arch": "resnet50"})
    other.parent.mkdir(parents=True, exist_ok=True)
    os.rename(path, other)  # a resnet18 artifact offered as resnet50's
    with pytest.warns(CacheIntegrityWarning, match=r"describes entry 'artifacts/case-\w+', not this one"):
        _, meta = cache.get_or_build("artifacts", "case", {**DESC, "arch": "resnet50"}, build)
    assert meta["cached"] is False


def test_has_says_no_to_a_damaged_entry_without_rebuilding(tmp_path: Path) -> None:
    cache, build, path = _entry(tmp_path)
    assert cache.has("artifacts", "case", DESC) and cache.verify("artifacts", "case", DESC) is None
    (path / "model.bin").write_bytes(b"\x00" * 100)
    assert not cache.has("artifacts", "case", DESC)
    assert "model.bin" in (cache.verify("artifacts", "case", DESC) or "")
    assert build.calls == 1 and cache.rebuilds == []


def test_large_files_are_hashed_once_per_process_yet_a_rewrite_is_caught(tmp_path: Path,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    big = 2 * cache_mod.REHASH_BELOW_BYTES
    cache, build, path = _entry(tmp_path, nbytes=big)
    hashed: list[str] = []
    real = cache_mod.file_sha256
    monkeypatch.setattr(cache_mod, "file_sha256", lambda p: hashed.append(Path(p).name) or real(p))
    fresh = ArtifactCache(tmp_path / "cache", key=KEY)  # another cache object in the same process
    assert fresh.get_or_build("artifacts", "case", DESC, build)[1]["cached"] is True
    assert fresh.get_or_build("artifacts", "case", DESC, build)[1]["cached"] is True
    assert hashed == [], "written and hashed by this process already: not hashed again"
    model = path / "model.bin"
    before = model.stat()
    with open(model, "r+b") as fh:  # in place: same inode and size, modification time put back
        fh.write(b"\x00" * 16)
    os.utime(model, ns=(before.st_atime_ns, before.st_mtime_ns))
    calls = build.calls
    with pytest.warns(CacheIntegrityWarning, match="model.bin does not match"):
        assert fresh.get_or_build("artifacts", "case", DESC, build)[1]["cached"] is False
    assert build.calls == calls + 1 and "model.bin" in hashed


def test_verified_copy_refuses_a_file_changed_after_the_check(tmp_path: Path) -> None:
    cache, build, path = _entry(tmp_path)
    _, meta = cache.get_or_build("artifacts", "case", DESC, build)
    with verified_copy(path, "model.bin", meta) as copy:
        assert copy.read_bytes() == (path / "model.bin").read_bytes() and copy.parent != path
        assert stat.S_IMODE(copy.parent.stat().st_mode) == 0o700
    assert not copy.exists()
    (path / "model.bin").write_bytes(b"\x00" * 100)
    with pytest.raises(CacheIntegrityError, match="model.bin changed after its manifest was checked"):
        with verified_copy(path, "model.bin", meta):
            pass
    with pytest.raises(CacheIntegrityError, match="no verified digest"):
        with verified_copy(path, "model.bin", {"files": ["model.bin"]}):
            pass


# --- real artifacts, in process -------------------------------------------------------------


def _logits(built: Any, x: torch.Tensor) -> torch.Tensor:
    return built.runner.to_logits(built.runner.run(built.runner.prepare(x)))


def test_a_truncated_artifact_is_rebuilt_with_a_note_naming_the_file(tmp_path: Path) -> None:
    from resnetbench.build import build_default

    cache = ArtifactCache(tmp_path / "cache", key=KEY)
    # tune=False: no recipe-choice entry in the counts below
    first = build_default("resnet18", "eager", 1, 32, cache, 1, "<test>", tune=False)
    x = torch.randn(1, 3, 32, 32)
    expected = _logits(first, x)
    weights = first.entry / "model.pt"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    with pytest.warns(CacheIntegrityWarning, match=r"eager-resnet18-\S+ rebuilt, not loaded: model\.pt has \d+ bytes"):
        again = build_default("resnet18", "eager", 1, 32, cache, 1, "<test>", tune=False)
    assert again.meta["cached"] is False and again.entry == first.entry
    assert [n for n in again.notes if "model.pt has" in n and "rebuilt, not loaded" in n]
    assert (cache.hits, cache.misses) == (0, 2)
    assert torch.equal(_logits(again, x), expected)


def test_trained_weights_are_a_signed_entry_and_a_changed_file_is_retrained(tmp_path: Path) -> None:
    # They were plain files beside the entries: a changed file was loaded as it was.
    from resnetbench.weights import trained_model

    cache = ArtifactCache(tmp_path / "cache", key=KEY)
    spec = {"source": "train", "dataset": "digits", "epochs": 1, "seed": 0, "size": 16}
    x = torch.randn(2, 3, 16, 16)
    first = trained_model("resnet18", spec, cache)
    with torch.inference_mode():
        expected = first(x)
    (entry,) = (tmp_path / "cache" / "weights").iterdir()
    assert (entry / "manifest.json").is_file()
    state = torch.load(entry / "model.pt", weights_only=True)
    torch.save({k: v.zero_() if v.is_floating_point() else v for k, v in state.items()}, entry / "model.pt")
    with pytest.warns(CacheIntegrityWarning, match=r"weights/resnet18-trained-\S+ rebuilt, not loaded: model\.pt"):
        again = trained_model("resnet18", spec, cache)
    with torch.inference_mode():
        assert torch.equal(again(x), expected)  # retrained from the seed, not the zeroed file
    assert cache.misses == 2


@pytest.mark.slow
@pytest.mark.parametrize("signed_with", [None, b"not the key"])
def test_tampered_onnx_weights_with_a_rewritten_manifest_are_rebuilt(tmp_path: Path, signed_with: bytes | None) -> None:
    from resnetbench.build import build_default

    cache = ArtifactCache(tmp_path / "cache", key=KEY)
    first = build_default("resnet18", "onnxruntime", 1, 32, cache, 1, "<test>")
    x = torch.randn(1, 3, 32, 32)
    expected = _logits(first, x)
    data = first.entry / "model.onnx.data"
    blob = bytearray(data.read_bytes())
    blob[: len(blob) // 2] = bytes(len(blob) // 2)  # half the weights zeroed: another model, same size
    data.write_bytes(bytes(blob))
    _forge(first.entry, signed_with)
    with pytest.warns(CacheIntegrityWarning, match="signature does not verify"):
        again = build_default("resnet18", "onnxruntime", 1, 32, cache, 1, "<test>")
    assert again.meta["cached"] is False
    assert torch.equal(_logits(again, x), expected)


# --- transformed models: tensors and a description, rebuilt bit for bit ----------------------


def _prepared(method_name: str, tmp_path: Path, **settings: Any) -> tuple[torch.nn.Module, dict[str, Any]]:
    from resnetbench.build import base_model
    from resnetbench.compress import get_method
    from resnetbench.compress.base import MethodContext
    from resnetbench.config import Config
    from resnetbench.matrix import Case

    config = Config(path=Path("<test>"), matrix={}, input_size=32)
    cache = ArtifactCache(tmp_path / "cache", key=KEY)
    method = get_method(method_name)
    assert method.prepare is not None
    ctx = MethodContext(config, cache, method.settings_for(settings), lambda arch: base_model(config, arch, cache))
    return method.prepare(base_model(config, "resnet18", cache), Case("resnet18", "fp32", method_name, "eager", 1), ctx)


def _round_trip(model: torch.nn.Module, out: Path) -> torch.nn.Module:
    from resnetbench.compress import structure

    out.mkdir()
    structure.save(model, "resnet18", out)
    assert sorted(p.name for p in out.iterdir()) == ["model.safetensors", "structure.json"]
    header_len = int.from_bytes((out / "model.safetensors").read_bytes()[:8], "little")
    assert (out / "model.safetensors").read_bytes()[8:9] == b"{" and header_len > 0  # safetensors: JSON header, raw bytes
    rebuilt = structure.load(out)
    x = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(1))
    with torch.inference_mode():
        assert torch.equal(model.eval()(x), rebuilt(x))
    original, again = model.state_dict(), rebuilt.state_dict()
    assert original.keys() == again.keys() and all(torch.equal(original[k], again[k]) for k in original)
    return rebuilt


def test_channel_pruned_model_round_trips(tmp_path: Path) -> None:
    model, info = _prepared("prune-channels", tmp_path)
    rebuilt = _round_trip(model, tmp_path / "stored")
    assert rebuilt.layer1[0].conv1.out_channels < 64 and rebuilt.layer1[0].bn1.num_features < 64
    assert rebuilt.fc.in_features < 512
    assert sum(p.numel() for p in rebuilt.parameters()) == info["params_after"] < info["params_before"]


def test_unstructured_pruned_model_round_trips(tmp_path: Path) -> None:
    model, info = _prepared("prune-l1-unstructured", tmp_path)
    rebuilt = _round_trip(model, tmp_path / "stored")
    zeros = sum(int((m.weight == 0).sum()) for m in rebuilt.modules() if isinstance(m, torch.nn.Conv2d | torch.nn.Linear))
    total = sum(m.weight.numel() for m in rebuilt.modules() if isinstance(m, torch.nn.Conv2d | torch.nn.Linear))
    assert zeros / total == pytest.approx(info["achieved_sparsity"])


def test_distilled_student_round_trips(tmp_path: Path) -> None:
    model, info = _prepared("distill", tmp_path, teacher="resnet34", epochs=1)
    _round_trip(model, tmp_path / "stored")
    assert info["teacher"] == "resnet34" and info["steps"] > 0


def test_batchnorm_folded_model_round_trips(tmp_path: Path) -> None:
    """An FX-fused model (BatchNorm folded into convolutions, as tests/extpkg's fold-bn does):
    its BatchNorms become Identity, its convolutions gain biases."""
    from torch.fx.experimental.optimization import fuse

    from resnetbench.models import build_model

    rebuilt = _round_trip(fuse(build_model("resnet18").eval()), tmp_path / "stored")
    assert isinstance(rebuilt.bn1, torch.nn.Identity) and rebuilt.conv1.bias is not None


def test_a_description_that_does_not_fit_its_architecture_is_refused(tmp_path: Path) -> None:
    from resnetbench.compress import structure
    from resnetbench.models import build_model

    model = build_model("resnet18")
    description = structure.describe(model, "resnet18")
    state = model.state_dict()
    bad_layers = {**description["layers"], "layer9.conv": {"type": "Conv2d"}}
    with pytest.raises(structure.StructureError, match="unknown: layer9.conv"):
        structure.rebuild({**description, "layers": bad_layers}, state)
    bad_channels = {**description["layers"], "conv1": {**description["layers"]["conv1"], "out_channels": "64; rm -rf"}}
    with pytest.raises(structure.StructureError, match="conv1: out_channels"):
        structure.rebuild({**description, "layers": bad_channels}, state)
    fewer = {**description["layers"], "conv1": {**description["layers"]["conv1"], "out_channels": 32}}
    with pytest.raises(structure.StructureError, match="tensors do not fit"):
        structure.rebuild({**description, "layers": fewer}, state)
    model.extra = torch.nn.Conv2d(3, 3, 1)
    with pytest.raises(structure.StructureError, match="layers the architecture has not: extra"):
        structure.describe(model, "resnet18")


def test_compressed_model_is_cached_as_tensors_and_rebuilt_identically(tmp_path: Path) -> None:
    from resnetbench.build import compressed_model
    from resnetbench.config import Config
    from resnetbench.matrix import Case

    config = Config(path=Path("<test>"), matrix={}, input_size=32)
    cache = ArtifactCache(tmp_path / "cache", key=KEY)
    case = Case("resnet18", "fp32", "prune-channels", "eager", 1)
    first, info = compressed_model(config, case, cache)
    again, info_again = compressed_model(config, case, cache)
    assert (info["cached"], info_again["cached"]) == (False, True)
    assert {k: v for k, v in info.items() if k != "cached"} == {k: v for k, v in info_again.items() if k != "cached"}
    assert info["pruner"].startswith("torch_pruning") and info["params_after"] < info["params_before"]
    entry = next((tmp_path / "cache" / "models").iterdir())
    assert sorted(p.name for p in entry.iterdir()) == ["manifest.json", "meta.json", "model.safetensors", "structure.json"]
    x = torch.randn(1, 3, 32, 32)
    with torch.inference_mode():
        assert torch.equal(first(x), again(x))


# --- end to end: planted payloads in a real cache --------------------------------------------

# rel_l2: on random weights a pruned model's only decidable metric (top-1 is degenerate);
# loose, as the point is that the rebuilt entries measure exactly what the first run measured.
PLANTED = """
matrix:
  include:
    - {arch: resnet18, compression: prune-channels, backend: eager, tolerances: {rel_l2: 10}}
    - {arch: resnet18, backend: compile}
    - {arch: resnet18, backend: onnxruntime}
input_size: 32
dataset: {name: synthetic, samples: 8}
tuning: {enabled: false}  # recipe choice is tested in test_tuning.py
claims: false
"""


def _comparable(case: dict[str, Any]) -> dict[str, Any]:
    acc = case.get("accuracy") or {}
    return {"outcome": case["outcome"], "tests": case["tests"], "size": case.get("size"),
            "verdict": acc.get("verdict"), "metrics": acc.get("metrics")}


@pytest.mark.slow
def test_planted_pickles_never_run_and_their_entries_are_rebuilt(run_matrix, tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    cache = tmp_path / "planted-cache"
    monkeypatch.setenv("RESNETBENCH_CACHE", str(cache))
    monkeypatch.setenv(KEY_ENV, "e2e-key")
    result, cold = run_matrix(PLANTED, "-m", "size or accuracy")
    assert result.ret == 0 and cold is not None and len(cold["cases"]) == 3, result.stdout.str()[-3000:]

    marker = tmp_path / "PAYLOAD-RAN"
    (pruned,) = (cache / "models").glob("resnet18-prune-channels-*")
    (compiled,) = (cache / "artifacts").glob("compile-resnet18-fp32-none-compile-b1-*")
    (onnx,) = (cache / "artifacts").glob("onnxruntime-resnet18-fp32-none-onnxruntime-b1-*")
    (pruned / "model.safetensors").write_bytes(pickle.dumps(Payload(marker)))
    torch.save(Payload(marker), compiled / "compiled.pt2")
    (onnx / "model.onnx").write_bytes(pickle.dumps(Payload(marker)))

    # --fresh-outputs: the rebuilt artifacts themselves compute the accuracy outputs
    result, warm = run_matrix(PLANTED, "-m", "size or accuracy", "--fresh-outputs")
    out = result.stdout.str()
    assert not marker.exists(), "a pickle planted in the cache ran"
    assert result.ret == 0, out[-3000:]
    assert warm is not None
    for case_id, case in by_id(warm).items():
        assert _comparable(case) == _comparable(by_id(cold)[case_id]), case_id
    for entry, file in ((pruned, "model.safetensors"), (compiled, "compiled.pt2"), (onnx, "model.onnx")):
        said = f"cache entry {entry.parent.name}/{entry.name} rebuilt, not loaded: {file}"
        assert said in out, f"the run does not name {file}: {out[-3000:]}"
    notes = by_id(warm)
    assert any("compiled.pt2" in n for n in notes["resnet18-fp32-none-compile-b1"]["notes"])
    assert any("model.safetensors" in n for n in notes["resnet18-fp32-prune-channels-eager-b1"]["notes"])
    assert re.search(r"cache: .* \(\d+ hits, 3 builds\)", out), "three entries rebuilt, everything else a hit"
    # the entries were made again, and hold what they should
    assert (compiled / "compiled.pt2").read_bytes()[:2] == b"PK" and (pruned / "structure.json").is_file()


@pytest.mark.slow
def test_litert_converts_a_channel_pruned_model_handed_over_as_tensors(tmp_path: Path) -> None:
    """LiteRT's converter runs in a child process: it gets the pruned model's tensors and layer
    description (no pickle) and converts the same function."""
    pytest.importorskip("litert_torch")
    from ai_edge_litert.interpreter import Interpreter

    from resnetbench.backends.litert import _convert

    model, _ = _prepared("prune-channels", tmp_path)
    dst = tmp_path / "model.tflite"
    notes: list[str] = []
    _convert(model, "resnet18", (1, 3, 32, 32), dst, notes)
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("model")) == ["model.tflite"]
    interpreter = Interpreter(model_path=str(dst))
    interpreter.allocate_tensors()
    x = torch.randn(1, 3, 32, 32, generator=torch.Generator().manual_seed(2))
    interpreter.set_tensor(interpreter.get_input_details()[0]["index"], x.numpy())
    interpreter.invoke()
    got = torch.from_numpy(interpreter.get_tensor(interpreter.get_output_details()[0]["index"]))
    with torch.inference_mode():
        want = model.eval()(x)
    assert got.shape == want.shape
    assert torch.allclose(got, want, rtol=1e-3, atol=1e-4 * float(want.abs().max()))
