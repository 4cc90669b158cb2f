"""``resnetbench decide`` on hand-made results: a pick and why, ties, none satisfies, missing
figures listed as undecided (never as good), dominated configurations off the front."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from resnetbench import cli
from resnetbench.decide import Scenario, ScenarioError, decide, format_decision

EDGE = Scenario.parse("test-edge", {"batch": 1, "constraints": {"max_artifact_mb": 50, "max_top1_drop_points": 1.0,
                                                                   "max_p99_ms": 30},
                                    "objective": {"minimize": "p99_ms"}})


def case(case_id: str, mb: float | None = 10.0, drop: float | None = 0.5, p99: float | None = 10.0,
         outcome: str = "passed", batch: int = 1, memory: float | None = None, labelled: bool = True) -> dict[str, Any]:
    out: dict[str, Any] = {"id": case_id, "outcome": outcome, "batch": batch, "reason": ""}
    if mb is not None:
        out["size"] = {"artifact_mb": mb}
    if labelled:
        out["accuracy"] = {"task": None if drop is None else {"drop_points": drop, "undecidable": None}}
    else:
        out["accuracy"] = {"task": None}
    if p99 is not None:
        out["latency"] = {"median_ms": p99 * 0.8, "p99_ms": p99, "rounds": 100}
    if memory is not None:
        out["deployment"] = {"inference_peak_mb": memory}
    return out


def results(*cases: dict[str, Any]) -> dict[str, Any]:
    return {"cases": list(cases)}


def test_the_fastest_satisfying_configuration_is_picked_with_what_beats_the_runner_up() -> None:
    d = decide(results(case("r18-int8", mb=11, p99=6), case("r18-fp32", mb=45, p99=12),
                       case("r50-fp32", mb=98, p99=25)), EDGE)
    assert d.pick is not None and d.pick.case_id == "r18-int8"
    assert d.runner_up is not None and d.runner_up.case_id == "r18-fp32"
    assert [v.case_id for v in d.verdicts if v.status == "fails"] == ["r50-fp32"]
    text = format_decision(d)
    assert "pick: r18-int8 (p99_ms 6 ms)" in text
    assert "beats the runner-up r18-fp32 on: p99_ms 6 ms vs 12 ms; artifact_mb 11 MB vs 45 MB" in text
    assert "r50-fp32: max_artifact_mb 50 MB: measured 98 MB" in text


def test_what_the_pick_loses_to_the_runner_up_is_said_apart_from_what_it_wins() -> None:
    d = decide(results(case("fast-big", mb=45, p99=6), case("slow-small", mb=11, p99=12)), EDGE)
    text = format_decision(d)
    assert "beats the runner-up slow-small on: p99_ms 6 ms vs 12 ms\n" in text
    assert "and is worse on: artifact_mb 45 MB vs 11 MB" in text


def test_a_dominated_configuration_is_off_the_front_and_not_picked() -> None:
    # b is no better than a on anything and worse on size: dominated; c trades size for latency
    d = decide(results(case("a", mb=11, p99=6, drop=0.5), case("b", mb=20, p99=6, drop=0.5),
                       case("c", mb=5, p99=9, drop=0.5)), EDGE)
    assert {v.case_id for v in d.front} == {"a", "c"}
    assert d.pick is not None and d.pick.case_id == "a"


def test_a_tie_on_the_objective_is_broken_by_the_next_figure_and_said() -> None:
    d = decide(results(case("big", mb=40, p99=8, drop=0.2), case("small", mb=12, p99=8, drop=0.2)), EDGE)
    assert d.pick is not None and d.pick.case_id == "small"
    assert d.tie_broken_by == "artifact_mb"
    assert "tied on p99_ms; the tie is broken by artifact_mb" in format_decision(d)
    # identical figures: broken by the case id, and said so
    d = decide(results(case("y"), case("x")), EDGE)
    assert d.pick is not None and d.pick.case_id == "x" and d.tie_broken_by == "case id"


def test_when_nothing_satisfies_the_nearest_are_shown_with_the_constraint_each_fails() -> None:
    d = decide(results(case("slightly-slow", p99=33), case("far-too-big", mb=400, p99=90)), EDGE)
    assert d.pick is None
    text = format_decision(d)
    assert "pick: none" in text
    assert "nearest: slightly-slow fails max_p99_ms 30 ms: measured 33 ms" in text
    # the nearer violation first
    assert text.index("nearest: slightly-slow") < text.index("nearest: far-too-big")


def test_a_missing_figure_is_undecided_never_good() -> None:
    d = decide(results(case("unlabelled", labelled=False), case("untimed", p99=None),
                       case("ok", p99=20)), EDGE)
    status = {v.case_id: v for v in d.verdicts}
    assert status["unlabelled"].status == "undecided"
    assert any("no labelled data" in m for m in status["unlabelled"].missing)
    assert status["untimed"].status == "undecided"
    assert any("not timed" in m for m in status["untimed"].missing)
    # the faster undecided ones do not beat the slower decided one
    assert d.pick is not None and d.pick.case_id == "ok"
    # a figure that fails still fails beside a missing one
    d = decide(results(case("big-unlabelled", mb=400, labelled=False)), EDGE)
    assert d.verdicts[0].status == "fails" and d.pick is None


def test_too_few_samples_for_a_p99_is_undecided() -> None:
    c = case("few")
    c["latency"] = {"median_ms": 5.0, "p99_ms": None, "rounds": 20}
    d = decide(results(c), EDGE)
    assert d.verdicts[0].status == "undecided" and "too few samples for a p99 (20 rounds" in d.verdicts[0].missing[0]


def test_failed_cases_and_other_batches_are_not_candidates() -> None:
    d = decide(results(case("broken", outcome="failed"), case("b8", batch=8), case("ok")), EDGE)
    assert [i for i, _ in d.not_candidates] == ["broken", "b8"]
    assert d.pick is not None and d.pick.case_id == "ok"


def test_cloud_needs_capacity_and_says_so() -> None:
    d = decide(results(case("r50")), Scenario.load("cloud"))
    assert d.pick is None and d.verdicts[0].status == "undecided"
    assert any("no LoadGen Server run" in m for m in d.verdicts[0].missing)


def server(c: dict[str, Any], qps: float, bound_ms: float) -> dict[str, Any]:
    return {**c, "scenarios": {"server": {"qps": qps, "p99_bound_ms": bound_ms}}}


def test_cloud_counts_capacity_only_under_its_own_latency_bound() -> None:
    loose, tight = server(case("loose"), 900.0, 50.0), server(case("tight"), 300.0, 15.0)
    d = decide(results(loose, tight), Scenario.load("cloud"))
    assert d.pick is not None and d.pick.case_id == "tight"
    [undecided] = [v for v in d.verdicts if v.case_id == "loose"]
    assert undecided.status == "undecided"
    assert any("within 50.0 ms; this scenario needs it within 15 ms" in m for m in undecided.missing)
    # a Server search that found no valid rate says so, with LoadGen's reason
    none = {**case("none"), "scenarios": {"server": {"qps": None, "p99_bound_ms": 15.0,
                                                    "reason": "no valid Server run in 2 tries, down to 25.8 QPS"}}}
    [v] = decide(results(none), Scenario.load("cloud")).verdicts
    assert v.status == "undecided" and any("no Server rate with p99 within 15.0 ms: no valid Server run in 2 tries"
                                           in m for m in v.missing)
    # the same capacity at the scenario's bound is a candidate, and wins
    assert decide(results(server(case("loose"), 900.0, 15.0), tight), Scenario.load("cloud")).pick.case_id == "loose"


@pytest.mark.parametrize(("data", "message"), [
    ([1, 2], "a scenario is a mapping"),
    ({"constraints": {}, "objective": {"maximize": "server_qps"}, "server_p99_ms": -1}, "server_p99_ms: -1 is not"),
    ({"constraints": {"max_speed": 3}, "objective": {"minimize": "p99_ms"}}, "constraints.max_speed: not a constraint"),
    ({"constraints": {"max_p99_ms": "fast"}, "objective": {"minimize": "p99_ms"}}, "'fast' is not a number"),
    ({"constraints": {}, "objective": {"minimise": "p99_ms"}}, "objective: must be"),
    ({"constraints": {}, "objective": {"minimize": "p99_ms"}, "batch": 0}, "batch: 0 is not a positive"),
    ({"constraint": {}}, "unknown key(s) ['constraint']"),
])
def test_bad_scenarios_are_refused_with_what_is_wrong(data: Any, message: str) -> None:
    with pytest.raises(ScenarioError, match=None) as err:
        Scenario.parse("s.yaml", data)
    assert message in str(err.value)


def test_the_command_exits_0_with_a_pick_1_without_and_2_on_bad_input(tmp_path: Path,
                                                                          capsys: pytest.CaptureFixture[str]) -> None:
    good = tmp_path / "good.json"
    # the project's example results, with enough rounds for a p99 on its int8 case
    data = json.loads((Path(__file__).parent / "data" / "results_example.json").read_text())
    picked = next(c for c in data["cases"] if c["id"] == "resnet18-int8-static-onnxruntime-b1")
    picked["latency"]["p99_ms"] = 6.0
    good.write_text(json.dumps(data))
    scenario = tmp_path / "s.yaml"
    scenario.write_text("constraints: {max_p99_ms: 30}\nobjective: {minimize: p99_ms}\nbatch: 1\n")
    out = tmp_path / "d.json"
    assert cli.main(["decide", str(good), "--scenario", str(scenario), "--json", str(out)]) == 0
    assert json.loads(out.read_text())["pick"]["id"] == "resnet18-int8-static-onnxruntime-b1"
    assert cli.main(["decide", str(good), "--scenario", "cloud"]) == 1
    assert cli.main(["decide", str(good), "--scenario", str(tmp_path / "nope.yaml")]) == 2
    assert "neither a built-in scenario (edge, cloud) nor a file" in capsys.readouterr().err
    assert cli.main(["decide", str(tmp_path / "missing.json")]) == 2


def test_the_report_opens_with_the_pick_for_the_guide_s_scenarios() -> None:
    from resnetbench.report import render_html

    data = json.loads((Path(__file__).parent / "data" / "results_example.json").read_text())
    picked = next(c for c in data["cases"] if c["id"] == "resnet18-int8-static-onnxruntime-b1")
    picked["latency"]["p99_ms"] = 6.0
    html = render_html(data)
    ship = html[html.index('<section id="ship">'):html.index("</section>", html.index('<section id="ship">'))]
    assert "Pick: <strong>resnet18-int8-static-onnxruntime-b1</strong>" in ship  # edge
    assert "<strong>No pick</strong>" in ship  # cloud: no capacity measured yet
    assert html.index('<section id="ship">') < html.index('<section id="cases-section">')
