"""The results file: atomic writes, validation with clear errors, merging shards."""

from __future__ import annotations

import json
import os

import pytest

from resnetbench import results
from resnetbench.cli import main


def minimal(cases, fingerprint="m1", **top):
    return {"schema_version": 1, "environment": {"fingerprint": {"hash": fingerprint}}, "cases": cases, "claims": [],
            **top}


def case(id_, outcome="passed"):
    arch, dtype, comp, backend, batch = id_.split("-")
    return {"id": id_, "arch": arch, "dtype": dtype, "compression": comp, "backend": backend,
            "batch": int(batch[1:]), "outcome": outcome, "reason": ""}


@pytest.mark.parametrize(
    ("outcomes", "expected"),
    [(["passed", "skipped"], "passed"), (["skipped", "skipped"], "skipped"), (["passed", "failed"], "failed"),
     (["failed", "error"], "error"), ([], "skipped")],
)
def test_case_outcome_is_the_worst_of_its_tests(outcomes, expected):
    assert results.combine_outcomes(outcomes) == expected


def test_atomic_write_leaves_no_temporary_and_is_readable(tmp_path):
    path = tmp_path / "sub" / "results.json"
    results.write_atomic(path, minimal([case("resnet18-fp32-none-eager-b1")]))
    assert json.loads(path.read_text())["cases"][0]["id"] == "resnet18-fp32-none-eager-b1"
    assert os.listdir(path.parent) == ["results.json"]
    assert path.stat().st_mode & 0o044, "results are readable by others (mkstemp makes 0600)"


def test_failed_write_keeps_the_old_file(tmp_path):
    path = tmp_path / "results.json"
    results.write_atomic(path, minimal([]))
    with pytest.raises(TypeError):
        results.write_atomic(path, {"cases": [object()]})
    assert json.loads(path.read_text()) == minimal([])
    assert os.listdir(tmp_path) == ["results.json"]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{not json", "results.json:1: not valid JSON"),
        ("[]", "not a resnetbench results file"),
        ('{"schema_version": 7, "cases": []}', "schema_version 7 is not supported"),
        ('{"schema_version": 1, "cases": [{"id": "x"}]}', "cases[0] lacks arch"),
        (json.dumps(minimal([{**case("resnet18-fp32-none-eager-b1"), "outcome": "great"}])), "outcome 'great'"),
    ],
)
def test_bad_results_files_are_named_with_the_problem(tmp_path, content, message):
    path = tmp_path / "results.json"
    path.write_text(content)
    with pytest.raises(results.ResultsError, match=message.replace("[", r"\[").replace("]", r"\]")):
        results.load(path)


def test_missing_results_file(tmp_path):
    with pytest.raises(results.ResultsError, match="no such results file"):
        results.load(tmp_path / "nope.json")


def test_merge_shards_keeps_every_case(tmp_path, capsys):
    a, b, out = tmp_path / "a.json", tmp_path / "b.json", tmp_path / "out.json"
    results.write_atomic(a, minimal([case("resnet18-fp32-none-eager-b1"), case("resnet34-fp32-none-eager-b1")]))
    results.write_atomic(b, minimal([case("resnet50-fp32-none-eager-b1", "failed")]))
    assert main(["merge", str(a), str(b), "-o", str(out)]) == 0
    merged = results.load(out)
    assert [c["id"] for c in merged["cases"]] == [
        "resnet18-fp32-none-eager-b1", "resnet34-fp32-none-eager-b1", "resnet50-fp32-none-eager-b1"]
    assert merged["shards"] == [str(a), str(b)]
    assert main(["merge", str(a), str(tmp_path / "missing.json"), "-o", str(out)]) == 2
    assert "no such results file" in capsys.readouterr().err


IDS = ["resnet18-fp32-none-eager-b1", "resnet34-fp32-none-eager-b1", "resnet50-fp32-none-eager-b1"]


def _shards(tmp_path, parts, n=None, fingerprints=None):
    paths = []
    for k, ids in enumerate(parts, start=1):
        top = {"shard": f"{k}/{n or len(parts)}", "matrix_cases": IDS}
        fp = (fingerprints or {}).get(k, "m1")
        path = tmp_path / f"s{k}.json"
        results.write_atomic(path, minimal([case(i) for i in ids], fp, **top))
        paths.append(str(path))
    return paths


def test_merge_of_complete_shards_passes_and_drops_the_shard_keys(tmp_path, capsys):
    out = tmp_path / "out.json"
    assert main(["merge", *_shards(tmp_path, [IDS[:2], IDS[2:]]), "-o", str(out)]) == 0
    merged = results.load(out)
    assert sorted(c["id"] for c in merged["cases"]) == IDS and "shard" not in merged and "matrix_cases" not in merged
    assert merged["merge"] == {"duplicates": [], "missing_cases": [], "missing_shards": [], "mixed_shard_counts": False}


def test_merge_reports_duplicates_missing_cases_and_missing_shards(tmp_path, capsys):
    out = tmp_path / "out.json"
    assert main(["merge", *_shards(tmp_path, [IDS[:2], IDS[1:2]]), "-o", str(out)]) == 1
    err = capsys.readouterr().err
    assert f"more than one file (the last kept): {IDS[1]}" in err and f"no file holds: {IDS[2]}" in err
    capsys.readouterr()
    paths = _shards(tmp_path, [IDS[:2], IDS[2:]], n=3)  # shard 3/3 never came
    assert main(["merge", *paths, "-o", str(out)]) == 1
    assert "shards no file came from: 3/3" in capsys.readouterr().err
    assert results.load(out)["merge"]["missing_shards"] == ["3/3"]


def test_merge_refuses_results_of_different_machines_unless_allowed(tmp_path, capsys):
    out = tmp_path / "out.json"
    paths = _shards(tmp_path, [IDS[:2], IDS[2:]], fingerprints={2: "m2"})
    assert main(["merge", *paths, "-o", str(out)]) == 2
    err = capsys.readouterr().err
    assert "different machines or library versions" in err and "(m2)" in err and "--allow-mixed" in err
    assert not out.exists(), "a refused merge writes nothing"
    assert main(["merge", *paths, "-o", str(out), "--allow-mixed"]) == 0
    # a file that cannot say where it ran is not assumed to match
    results.write_atomic(tmp_path / "nofp.json", {**minimal([case(IDS[0])]), "environment": {}})
    assert main(["merge", paths[1], str(tmp_path / "nofp.json"), "-o", str(tmp_path / "o2.json")]) == 2
    assert "no fingerprint" in capsys.readouterr().err
