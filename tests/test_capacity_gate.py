"""The capacity gate (compare/capacity.py): Offline throughput and Server capacity, failing closed."""

from __future__ import annotations

from typing import Any

import pytest

from resnetbench.compare.capacity import decide_offline, decide_server
from resnetbench.compare.rules import compare_results
from resnetbench.results import ResultsError


def _server(low: float | None, high: float | None, bound: float = 15.0, tried: tuple[float, ...] = ()) -> dict[str, Any]:
    return {"p99_bound_ms": bound, "qps": low, "bracket": [low, high],
            "runs": [{"target_qps": q, "valid": False} for q in tried]}


def _results(offline: list[float] | None = None, server: dict[str, Any] | None = None,
             gate: dict[str, Any] | None = None, scenarios: bool = True) -> dict[str, Any]:
    case: dict[str, Any] = {"id": "c", "arch": "resnet50", "dtype": "int8", "compression": "static",
                            "backend": "openvino", "batch": 1, "outcome": "passed"}
    if scenarios:
        case["scenarios"] = {}
        if offline is not None:
            case["scenarios"]["offline"] = {"samples_per_s": offline[0], "runs_samples_per_s": offline}
        if server is not None:
            case["scenarios"]["server"] = server
    return {"schema_version": 1, "environment": {}, "cases": [case], "claims": [], "gate": gate or {}}


def _decide(base: dict[str, Any], cur: dict[str, Any]) -> dict[str, Any]:
    return compare_results(base, cur)[0]


def _check(record: dict[str, Any], name: str) -> dict[str, Any]:
    return next(c for c in record["checks"] if c["name"] == name)


BASE_RUNS = [800.0, 812.0, 795.0, 805.0, 809.0]


@pytest.mark.parametrize(("cur", "status"), [
    ([802.0, 790.0, 815.0, 799.0, 806.0], "ok"),             # A/A
    ([640.0, 650.0, 645.0, 630.0, 655.0], "regressed"),      # 20% slower, every run below every baseline run
    ([640.0, 650.0, 800.0, 630.0, 655.0], "inconclusive"),   # the median fell, one run as high as the baseline's
    ([760.0, 770.0, 750.0, 765.0, 755.0], "ok"),             # -5%: within the 10% threshold
    ([1000.0, 990.0, 1010.0, 995.0, 1005.0], "ok"),          # faster is never a regression
    ([640.0], "regressed"),                                  # one run is still evidence when it is below all
])
def test_offline_throughput_falls_are_regressed_only_when_every_run_is_below(cur, status):
    assert decide_offline(BASE_RUNS, cur, 0.10)[0] == status


@pytest.mark.parametrize(("base", "cur", "status"), [
    (_server(100.0, 105.0), _server(98.0, 102.0), "ok"),
    (_server(100.0, 105.0), _server(80.0, 84.0), "regressed"),            # high 84 <= 90
    (_server(100.0, 105.0), _server(85.0, 95.0), "inconclusive"),         # fell past 10%, brackets overlap
    (_server(100.0, 105.0), _server(None, None, tried=(50.0, 25.0)), "regressed"),   # nothing valid down to 25
    (_server(100.0, 105.0), _server(None, None, tried=(95.0,)), "inconclusive"),     # never searched below 90
    (_server(100.0, 105.0), _server(None, None), "inconclusive"),                    # no run at all
    (_server(None, None, tried=(10.0,)), _server(None, None, tried=(10.0,)), "ok"),   # nothing either side
    (_server(None, None), _server(50.0, 60.0), "ok"),                     # serves a rate now
    (_server(100.0, None), _server(300.0, None), "ok"),                   # search never failed: only a low bound
    (_server(100.0, 105.0, bound=15.0), _server(50.0, 55.0, bound=100.0), "inconclusive"),  # other bound
])
def test_server_capacity_is_regressed_only_when_the_brackets_separate(base, cur, status):
    assert decide_server(base, cur, 0.10)[0] == status


def _crossing(server: dict[str, Any], crossing: float) -> dict[str, Any]:
    return {**server, "crossing_qps": crossing}


@pytest.mark.parametrize(("base", "cur", "status"), [
    # the VALID rates say -15% (an A/A search that stopped low), the crossings -2%: ok
    (_crossing(_server(100.0, 105.0), 102.0), _crossing(_server(85.0, 95.0), 100.0), "ok"),
    # the VALID rates say -2%, the crossings -15%: blocks, brackets overlap
    (_crossing(_server(100.0, 105.0), 104.0), _crossing(_server(98.0, 102.0), 88.0), "inconclusive"),
    (_crossing(_server(100.0, 105.0), 103.0), _crossing(_server(80.0, 84.0), 82.0), "regressed"),
    # one side without a crossing (an older record): the VALID rates decide
    (_server(100.0, 105.0), _crossing(_server(85.0, 95.0), 100.0), "inconclusive"),
])
def test_server_capacity_decides_on_the_crossing_when_both_sides_have_one(base, cur, status):
    assert decide_server(base, cur, 0.10)[0] == status


@pytest.mark.parametrize(("runs", "expected"), [
    ([(50, 5.0), (100, 30.0), (75, 8.0), (88, 20.0)], 81.5),            # a clean search: between 75 and 88
    ([(50, 5.0), (80, 40.0), (90, 9.0), (95, 11.0), (100, 30.0)], 97.5),  # one paused run at 80 is outvoted
    ([(50, 5.0), (100, 5.0)], 100.0),                                  # never over: at least the highest rate
    ([(50, 30.0), (25, None)], None),                                   # never within (no p99 counts as over)
    ([(100, 20.0), (100, 10.0), (50, 5.0)], 100.0),                    # the same rate, once each side
])
def test_the_crossing_is_the_cut_with_the_fewest_runs_on_the_wrong_side(runs, expected):
    from resnetbench.measure.capacity import crossing_rate

    assert crossing_rate(runs, 15.0) == expected


def test_the_capacity_gate_blocks_through_compare_and_fails_closed():
    base = _results(BASE_RUNS, _server(100.0, 105.0))
    assert _decide(base, _results([802.0, 790.0, 815.0, 799.0, 806.0], _server(98.0, 102.0)))["decision"] == "unchanged"
    slow = _decide(base, _results([640.0, 650.0, 645.0, 630.0, 655.0], _server(80.0, 84.0)))
    assert slow["decision"] == "regressed"
    assert _check(slow, "offline")["status"] == _check(slow, "server")["status"] == "regressed"
    assert "Server capacity 100 -> 80 QPS" in slow["reason"]
    # the scenarios ran in the baseline and not now: undecided, which blocks
    gone = _decide(base, _results(scenarios=False))
    assert gone["decision"] == "inconclusive" and "measured in the baseline, not now" in gone["reason"]
    # a matrix's own threshold lets a 20% fall through
    loose = _results([640.0, 650.0, 645.0, 630.0, 655.0], _server(80.0, 84.0), gate={"capacity_threshold": 0.3})
    assert _decide(base, loose)["decision"] == "unchanged"
    # never measured: nothing to gate
    assert _decide(_results(scenarios=False), _results(scenarios=False))["decision"] == "unchanged"


def test_a_damaged_throughput_list_is_a_clear_error():
    bad = _results(BASE_RUNS)
    bad["cases"][0]["scenarios"]["offline"]["runs_samples_per_s"] = [800.0, "fast"]
    with pytest.raises(ResultsError, match="scenarios.offline.runs_samples_per_s must be a list of numbers"):
        compare_results(_results(BASE_RUNS), bad)


# --- gate-check --capacity (resnetbench/tools/capacitycheck.py) ---


def _side(offline: list[float], low: float | None = None, high: float | None = None) -> dict[str, Any]:
    side: dict[str, Any] = {"offline": {"runs_samples_per_s": offline, "ratios": [r / 800.0 for r in offline]}}
    if low is not None:
        side["server"] = _server(low, high)
    return side


def test_capacity_check_counts_blocking_decisions_and_judges_the_targets():
    from resnetbench.tools.capacitycheck import compare_sides, summarize

    base, same, slow = _side(BASE_RUNS, 100.0, 105.0), _side(BASE_RUNS, 99.0, 104.0), _side([640.0] * 5, 80.0, 84.0)
    clean = [{"kind": "aa", "status": compare_sides(base, same, 0.10, "ref")} for _ in range(100)]
    clean += [{"kind": "slowed", "status": compare_sides(base, slow, 0.10, "ref")} for _ in range(100)]
    summary = summarize(clean)
    assert summary["failures"] == []
    assert summary["aa"]["server"]["blocking"] == 0 and summary["slowed"]["offline"]["regressed"] == 100
    # two A/A false alarms in 100 miss the 1-in-100 target; an inconclusive one counts (it blocks)
    noisy = [{"kind": "aa", "status": {"offline": "inconclusive", "server": "ok"}},
             {"kind": "aa", "status": {"offline": "regressed", "server": "ok"}}] + clean[2:]
    assert summarize(noisy)["failures"] == ["offline: A/A false alarms 2/100 (at most 1%)"]
    # six slowed systems missed: caught 94/100 < 95
    missed = clean[:100] + [{"kind": "slowed", "status": {"offline": "ok", "server": "regressed"}}] * 6 + clean[106:]
    assert summarize(missed)["failures"] == ["offline: slowed system caught 94/100 (at least 95%)"]
    # too few comparisons is not a pass; Offline only leaves Server unjudged
    few = summarize(clean[:10] + clean[100:110])
    assert "offline: 10 A/A and 10 slowed comparisons (need 100 each)" in few["failures"]
    offline_only = [{"kind": c["kind"], "status": {"offline": c["status"]["offline"]}} for c in clean]
    assert summarize(offline_only)["failures"] == []


@pytest.mark.slow
def test_capacity_check_runs_real_loadgen_on_a_tiny_case(tmp_path):
    pytest.importorskip("mlperf_loadgen")
    from resnetbench.tools.capacitycheck import format_summary, run_capacity_check

    result = run_capacity_check("resnet18", "onnxruntime", "fp32", 32, 1, cache_dir=tmp_path, repeats=2,
                                seconds=0.2, p99_ms=50.0, samples=16)
    assert len(result["sides"]) == 2 and "S" not in result["sides"][-1]
    assert all(len(side["offline"]["ratios"]) == 2 and side["server"]["runs"] and side["server"]["normalized"]
               for t in result["sides"] for side in t.values())
    assert {c["kind"] for c in result["comparisons"]} == {"aa", "slowed"} and len(result["comparisons"]) == 2
    assert all(set(c["status"]) == {"offline", "server"} for c in result["comparisons"])
    # how much slower the slowed system measured is recorded, not judged here: this test runs
    # beside others (the 100-trial figures are in docs/results/2026-12-06-capacity-gate.md)
    assert result["measured_slowdown"] is not None
    text = format_summary(result)
    assert "1 trials" in text and "need 100 each" in text  # one trial can never meet the targets


def _paired(raw: list[float], ratios: list[float], key: str = "onnxruntime/fp32/none/b1/32/default",
            normalized: dict[str, Any] | None = None, server: dict[str, Any] | None = None) -> dict[str, Any]:
    results = _results(raw, server)
    scenarios = results["cases"][0]["scenarios"]
    scenarios["offline"]["ratios"] = ratios
    scenarios["reference"] = {"key": key}
    if normalized is not None:
        scenarios["server"]["normalized"] = normalized
    return results


def test_paired_figures_decide_when_both_sides_have_the_same_reference():
    base = _paired(BASE_RUNS, [1.00, 1.01, 0.99, 1.00, 1.02], server=_server(100.0, 105.0),
                   normalized={"qps": 0.125, "bracket": [0.125, 0.131]})
    # the machine was 20% slower for the whole current run: raw throughput and capacity fell,
    # the ratios to the reference did not
    drifted = _paired([640.0, 650.0, 645.0, 630.0, 655.0], [1.01, 0.99, 1.00, 1.00, 1.01],
                      server=_server(80.0, 84.0), normalized={"qps": 0.124, "bracket": [0.124, 0.130]})
    record = _decide(base, drifted)
    assert record["decision"] == "unchanged", record["reason"]
    assert "case/reference throughput" in _check(record, "offline")["detail"]
    assert "per reference sample/s" in _check(record, "server")["detail"]
    # the case got 20% slower while the reference did not: the ratios fall though raw throughput held
    slower = _paired(BASE_RUNS, [0.83, 0.84, 0.82, 0.83, 0.84], server=_server(100.0, 105.0),
                     normalized={"qps": 0.100, "bracket": [0.100, 0.105]})
    record = _decide(base, slower)
    assert _check(record, "offline")["status"] == _check(record, "server")["status"] == "regressed"
    # another reference on one side: the raw figures decide, and say they are unpaired
    other = _paired(BASE_RUNS, [0.5] * 5, key="openvino/fp32/none/b1/32/default", server=_server(100.0, 105.0),
                    normalized={"qps": 0.05, "bracket": [0.05, 0.06]})
    record = _decide(base, other)
    assert record["decision"] == "unchanged" and "unpaired" in _check(record, "offline")["detail"]


@pytest.mark.parametrize(("flags", "message"), [
    (["--no-server", "--no-offline"], "leave nothing to check"),
    (["--refine-runs", "-1"], "--refine-runs >= 0"),
])
def test_capacity_check_refuses_options_that_measure_nothing(flags, message, capsys):
    import argparse

    from resnetbench.tools.gatecheck import add_parser

    parser = add_parser(argparse.ArgumentParser().add_subparsers())
    args = parser.parse_args(["--capacity", *flags])
    assert args.func(args) == 2
    assert message in capsys.readouterr().err


def test_capacity_check_compares_only_what_it_was_asked_to():
    from resnetbench.tools.capacitycheck import compare_sides

    base, slow = _side(BASE_RUNS, 100.0, 105.0), _side([640.0] * 5, 80.0, 84.0)
    assert compare_sides(base, slow, 0.10, "ref") == {"offline": "regressed", "server": "regressed"}
    assert compare_sides(base, slow, 0.10, "ref", ("server",)) == {"server": "regressed"}


def test_a_raw_crossing_never_stands_in_for_a_normalised_one():
    # older records: normalised figures without a crossing, raw crossings on both sides that
    # say -20% (the machine was slower); the normalised VALID rates, unchanged, decide
    base = _paired(BASE_RUNS, [1.0] * 5, server=_crossing(_server(100.0, 105.0), 100.0),
                   normalized={"qps": 0.125, "bracket": [0.125, 0.131]})
    cur = _paired(BASE_RUNS, [1.0] * 5, server=_crossing(_server(80.0, 84.0), 80.0),
                  normalized={"qps": 0.124, "bracket": [0.124, 0.130]})
    check = _check(_decide(base, cur), "server")
    assert check["status"] == "ok" and "highest VALID rate" in check["detail"], check


def test_a_case_compared_only_on_capacity_says_what_it_compared():
    # a LoadGen-only run has no latency, size or accuracy: an unchanged verdict names the
    # capacity figures it rests on, not "nothing to compare"
    record = _decide(_results(BASE_RUNS, _server(100.0, 105.0)), _results(BASE_RUNS, _server(101.0, 106.0)))
    assert record["decision"] == "unchanged", record
    assert "Offline" in record["reason"] and "Server capacity 100 -> 101" in record["reason"], record["reason"]


def test_the_real_flow_slowdown_reaches_loadgen_streams(monkeypatch):
    # gate-check --real-flow slows every case with this plugin; LoadGen loads its own streams
    # (scenarios_case.load_streams), which must be slowed too or capacity is never damaged
    from resnetbench import build
    from resnetbench.measure import scenarios_case
    from resnetbench.tools import slow_every_case
    from resnetbench.tools.slowdown import SlowedRunner

    class Runner:
        calls = 0

        def run(self, native):
            Runner.calls += 1
            return native

    loaded = [Runner(), Runner()]
    monkeypatch.setattr(scenarios_case, "load_streams", lambda *args, **kwargs: loaded)
    monkeypatch.setattr(build, "build_case", build.build_case)  # restored after the plugin wraps it
    monkeypatch.setenv(slow_every_case.ENV, "0.2")
    slow_every_case.pytest_configure(None)
    streams = scenarios_case.load_streams("cfg", "case", "cache", 1, "default", 2)
    assert [type(s) for s in streams] == [SlowedRunner, SlowedRunner]
    assert [s.inner for s in streams] == loaded and {s.fraction for s in streams} == {0.2}
    assert streams[0].run(7) == 7 and Runner.calls == 1
