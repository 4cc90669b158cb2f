"""Typed case records and the results file's JSON Schema."""

from __future__ import annotations

import copy
import dataclasses
import json
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import jsonschema
import pytest

from resnetbench import results
from resnetbench.cli import main
from resnetbench.records import (
    ACCURACY_VERDICTS,
    DECISIONS,
    OUTCOMES,
    STABILITY_VERDICTS,
    AccuracyRecord,
    CaseRecord,
    LatencyRecord,
    SizeRecord,
)
from resnetbench.settings import GateSettings

EXAMPLE = Path(__file__).parent / "data" / "results_example.json"


@pytest.fixture
def example() -> dict[str, Any]:
    return json.loads(EXAMPLE.read_text(encoding="utf-8"))


def fields_of(cls: type) -> list[str]:
    return [f.name for f in dataclasses.fields(cls) if f.name not in ("extra", "_keys")]


# --------------------------------------------------------------------------- round trips


def test_example_cases_round_trip_exactly(example: dict[str, Any]) -> None:
    for case in example["cases"]:
        record = CaseRecord.from_dict(case)
        out = record.to_dict()
        assert out == case
        assert json.dumps(out) == json.dumps(case), "same keys in the same order, nested too"
        assert CaseRecord.from_dict(out) == record


def test_example_parts_are_typed(example: dict[str, Any]) -> None:
    record = CaseRecord.from_dict(example["cases"][0])
    assert isinstance(record.size, SizeRecord) and record.size.params == 11_689_512
    assert isinstance(record.accuracy, AccuracyRecord) and record.accuracy.verdict == "passed"
    assert isinstance(record.latency, LatencyRecord) and record.latency.median_ms == pytest.approx(19.9285)
    assert record.latency.extra == {"normalized_median": pytest.approx(13.285666666666666)}
    assert isinstance(record.conversion, dict)
    skipped = CaseRecord.from_dict(example["cases"][3])
    assert skipped.size is None and skipped.latency is None and skipped.outcome == "skipped"


def test_built_record_round_trips_and_writes_in_declaration_order() -> None:
    record = CaseRecord(
        arch="resnet18", dtype="fp32", compression="none", backend="eager", batch=1,
        id="resnet18-fp32-none-eager-b1", reason="", input_size=32, tests={"size": "passed"}, notes=[],
        size=SizeRecord(params=10, artifact_bytes=40, ratio=None, extra={"my_metric": 1.5}),
        accuracy=AccuracyRecord(verdict="failed", message="output shape (1, 10) != (1, 1000)"),
        latency=LatencyRecord(samples_ms=[1.0, 2.0], median_ms=1.5),
    )
    data = record.to_dict()
    assert list(data) == ["arch", "dtype", "compression", "backend", "batch", "id", "outcome", "reason",
                          "input_size", "tests", "notes", "size", "accuracy", "latency"]
    assert data["size"] == {"params": 10, "artifact_bytes": 40, "my_metric": 1.5}  # None fields left out
    assert data["accuracy"] == {"verdict": "failed", "message": "output shape (1, 10) != (1, 1000)"}
    assert CaseRecord.from_dict(data) == record
    assert CaseRecord.from_dict(data).to_dict() == data


def test_absent_and_null_both_round_trip() -> None:
    for data in ({"verdict": "failed", "message": "x"}, {"verdict": "passed", "degenerate": None, "task": None}):
        assert AccuracyRecord.from_dict(data).to_dict() == data
    lat = LatencyRecord.from_dict({"samples_ms": [1.0], "p90_ms": None})
    lat.gate = {"decision": "unchanged"}  # set after reading: written after the keys it was read with
    assert list(lat.to_dict()) == ["samples_ms", "p90_ms", "gate"]


def test_extra_keys_must_not_shadow_fields() -> None:
    with pytest.raises(ValueError, match="shadow"):
        SizeRecord(params=1, extra={"params": 2})
    # a key literally called "extra" is just an extra key
    assert SizeRecord.from_dict({"extra": 1}).to_dict() == {"extra": 1}


def test_note_creates_notes() -> None:
    record = CaseRecord(arch="a", dtype="fp32", compression="none", backend="eager", batch=1, id="x")
    record.note("first")
    assert record.to_dict()["notes"] == ["first"]


def test_run_state_writes_case_records_that_load(tmp_path: Path) -> None:
    """What the plugin writes (RunState.record -> results()) is a CaseRecord, valid against the schema."""
    from resnetbench.matrix import Case
    from resnetbench.plugin import RunState

    config = SimpleNamespace(input_size=32, path="m.yaml", gate=GateSettings())
    state = RunState(config=config, cases=[], results_path=tmp_path / "results.json", threads=1,  # type: ignore[arg-type]
                     cache=None, environment={"threads": 1})
    case = Case("resnet18", "fp32", "none", "eager", 1, tolerances={"rel_l2": 1e-4})
    rec = state.record(case)
    assert isinstance(rec, CaseRecord) and state.record(case) is rec
    rec.tests["size"] = "passed"  # type: ignore[index]
    rec.size = SizeRecord.from_dict({"params": 11_689_512, "ratio": None, "within_tolerance": True})
    rec.tests["latency"] = "skipped"  # type: ignore[index]
    state.write()
    data = results.load(state.results_path)
    (written,) = data["cases"]
    assert list(written) == ["arch", "dtype", "compression", "backend", "batch", "id", "outcome", "reason",
                             "input_size", "tests", "tolerances", "settings", "notes", "size"]
    assert written["outcome"] == "passed" and written["size"]["ratio"] is None
    assert CaseRecord.from_dict(written) == rec


# --------------------------------------------------------------------------- schema


def test_schema_is_valid_and_validates_the_example(example: dict[str, Any]) -> None:
    schema = results.results_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    jsonschema.Draft202012Validator(schema).validate(example)
    assert results.load(EXAMPLE) == example


def test_cli_prints_the_results_schema(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["schema", "--results"]) == 0
    schema = json.loads(capsys.readouterr().out)
    jsonschema.Draft202012Validator.check_schema(schema)
    assert schema == results.results_schema()
    assert main(["schema"]) == 0  # without the flag: still the matrix schema
    assert json.loads(capsys.readouterr().out) != schema


def test_schema_vocabularies_and_fields_match_records() -> None:
    schema = results.results_schema()
    defs = schema["$defs"]
    case = defs["case"]["properties"]
    assert case["outcome"]["enum"] == list(OUTCOMES)
    assert case["tests"]["additionalProperties"]["enum"] == list(OUTCOMES)
    assert defs["accuracy"]["properties"]["verdict"]["enum"] == list(ACCURACY_VERDICTS)
    assert defs["latency"]["properties"]["stability"]["properties"]["verdict"]["enum"] == list(STABILITY_VERDICTS)
    assert defs["latency"]["properties"]["gate"]["properties"]["decision"]["enum"] == list(DECISIONS)
    # one schema property per dataclass field, and parts take keys of their own
    assert list(case) == fields_of(CaseRecord)
    for name, cls in (("size", SizeRecord), ("accuracy", AccuracyRecord), ("latency", LatencyRecord)):
        assert list(defs[name]["properties"]) == fields_of(cls), name
        assert defs[name]["additionalProperties"] is True


# --------------------------------------------------------------------------- load refuses bad files


def write(tmp_path: Path, data: Any) -> Path:
    path = tmp_path / "results.json"
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


def _string_median(d: dict[str, Any]) -> None:
    d["cases"][2]["latency"]["median_ms"] = "3.3"


def _unknown_test_outcome(d: dict[str, Any]) -> None:
    d["cases"][1]["tests"]["size"] = "great"


def _no_id(d: dict[str, Any]) -> None:
    del d["cases"][4]["id"]


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (_string_median, 'cases[2].latency.median_ms (resnet18-int8-static-onnxruntime-b1): "3.3" is a string,'
                         " expected number or null"),
        (lambda d: d["cases"][0].update(outcome="great"), "cases[0] (resnet18-fp32-none-eager-b1) has outcome 'great'"),
        (_unknown_test_outcome, 'cases[1].tests.size (resnet18-fp32-none-onnxruntime-b1): "great" is not allowed;'
                                " allowed: passed, failed, skipped, error"),
        (lambda d: d["cases"][4]["latency"]["stability"].update(verdict="shaky"),
         "cases[4].latency.stability.verdict (resnet18-bf16-none-onnxruntime-b1): \"shaky\" is not allowed"),
        (lambda d: d["cases"][0]["accuracy"].pop("verdict"), "cases[0].accuracy (resnet18-fp32-none-eager-b1): lacks verdict"),
        (_no_id, "cases[4] lacks id"),
        (lambda d: d["cases"][0].update(batch="1"), 'cases[0].batch (resnet18-fp32-none-eager-b1): "1" is a string'),
        (lambda d: d["cases"][0].update(notes="none"), "cases[0].notes (resnet18-fp32-none-eager-b1): \"none\" is a string, expected array"),
        (lambda d: d["claims"][1].pop("id"), "claims[1]: lacks id"),
        (lambda d: d.pop("environment"), "top level: lacks environment"),
    ],
)
def test_bad_types_are_refused_naming_the_path(
    tmp_path: Path, example: dict[str, Any], damage: Any, message: str
) -> None:
    damage(example)
    path = write(tmp_path, example)
    with pytest.raises(results.ResultsError) as info:
        results.load(path)
    assert str(info.value) == f"{path}: {message}" or str(info.value).startswith(f"{path}: {message}"), str(info.value)


def test_long_values_are_shortened(tmp_path: Path, example: dict[str, Any]) -> None:
    example["cases"][0]["latency"] = list(range(1000))
    with pytest.raises(results.ResultsError) as info:
        results.load(write(tmp_path, example))
    assert "cases[0].latency (resnet18-fp32-none-eager-b1): [0, 1, 2," in str(info.value)
    assert len(str(info.value)) < 300


def test_merge_and_compare_refuse_bad_files_without_traceback(
    tmp_path: Path, example: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    good = tmp_path / "good.json"
    good.write_text(json.dumps(example), encoding="utf-8")
    bad = copy.deepcopy(example)
    _string_median(bad)
    bad_path = tmp_path / "bad.json"
    bad_path.write_text(json.dumps(bad), encoding="utf-8")
    assert main(["merge", str(good), str(bad_path), "-o", str(tmp_path / "out.json")]) == 2
    err = capsys.readouterr().err
    assert f"{bad_path}: cases[2].latency.median_ms" in err and "Traceback" not in err
    assert not (tmp_path / "out.json").exists()


# --------------------------------------------------------------------------- user metrics


def test_extra_metric_survives_load_and_to_dict(tmp_path: Path, example: dict[str, Any]) -> None:
    case = example["cases"][0]
    case["latency"]["p95_ms"] = 21.5
    case["size"]["compressed_bytes"] = 12_345
    case["accuracy"]["metrics"]["my_score"] = 0.5
    case["my_case_key"] = {"anything": [1, 2]}
    loaded = results.load(write(tmp_path, example))
    record = CaseRecord.from_dict(loaded["cases"][0])
    assert record.latency is not None and record.latency.extra["p95_ms"] == 21.5
    assert record.size is not None and record.size.extra == {"compressed_bytes": 12_345}
    assert record.extra == {"my_case_key": {"anything": [1, 2]}}
    assert json.dumps(record.to_dict()) == json.dumps(case)


def test_records_and_results_never_import_torch() -> None:
    code = "import sys, resnetbench.results, resnetbench.records; sys.exit('torch' in sys.modules)"
    root = Path(__file__).resolve().parent.parent
    assert subprocess.run([sys.executable, "-c", code], cwd=root, check=False).returncode == 0
