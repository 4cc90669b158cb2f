"""Sharding: every case in exactly one shard, keyed by id, balanced by expected cost."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from resnetbench.config import load_config
from resnetbench.matrix import expand
from resnetbench.shard import assign, durations_from, expected_costs, loads, model_cost, shard_cases

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def cases():
    return expand(load_config(ROOT / "matrix.yaml"))


@pytest.mark.parametrize("n", [1, 2, 3, 5, 40, 41])
def test_the_shards_partition_the_cases(cases, n):
    shards = [shard_cases(cases, k, n, 224) for k in range(1, n + 1)]
    ids = [c.id for shard in shards for c in shard]
    assert len(ids) == len(set(ids)) == len(cases)
    assert set(ids) == {c.id for c in cases}
    for shard in shards:  # each shard keeps the matrix's order
        assert [c.id for c in shard] == [c.id for c in cases if c in shard]


def test_the_split_depends_on_ids_and_costs_not_on_the_order_of_the_matrix(cases):
    shuffled = list(cases)
    random.Random(1).shuffle(shuffled)
    for k in (1, 2, 3):
        assert {c.id for c in shard_cases(cases, k, 3, 224)} == {c.id for c in shard_cases(shuffled, k, 3, 224)}


def test_greedy_split_balances_known_costs():
    costs = {"a": 10.0, "b": 10.0, "c": 8.0, "d": 6.0, "e": 4.0, "f": 2.0}
    assert loads(costs, 2) == [20.0, 20.0]
    assert sorted(loads(costs, 3)) == [12.0, 14.0, 14.0]
    # one case longer than the mean shard: it is a shard on its own
    assert max(loads({"big": 100.0, "x": 1.0, "y": 1.0}, 2)) == 100.0


def test_position_based_sharding_would_be_unbalanced_where_cost_based_is_not(cases):
    """The old rule (every N-th case) against the cost model, both judged by the cost model."""
    costs = expected_costs(cases, 224)
    by_position = [sum(costs[c.id] for i, c in enumerate(cases) if i % 3 == k) for k in range(3)]
    balanced = loads(costs, 3)
    mean = sum(costs.values()) / 3
    assert max(balanced) / mean < max(by_position) / mean
    assert max(balanced) / mean <= 1.25


def test_the_cost_model_orders_architectures_and_input_sizes(cases):
    by_id = {c.id: c for c in cases}
    r18, r152 = by_id["resnet18-fp32-none-eager-b1"], by_id["resnet152-fp32-none-eager-b1"]
    assert model_cost(r152, 224) > 5 * model_cost(r18, 224)
    assert model_cost(r18, 112) == pytest.approx(model_cost(r18, 224) / 4)


def test_durations_win_over_the_model_and_unknown_cases_are_scaled_to_them(cases):
    first, second, third = cases[:3]
    durations = {first.id: 2 * model_cost(first, 224) * 10, second.id: 2 * model_cost(second, 224) * 10}
    costs = expected_costs(cases[:3], 224, durations)
    assert costs[first.id] == durations[first.id] and costs[second.id] == durations[second.id]
    assert costs[third.id] == pytest.approx(model_cost(third, 224) * 20)


def test_durations_are_read_from_a_results_file():
    results = {"cases": [{"id": "a", "duration_s": 3.5}, {"id": "b", "duration_s": None}, {"id": "c"},
                         {"id": "d", "duration_s": 0}]}
    assert durations_from(results) == {"a": 3.5}


def test_assign_refuses_zero_shards():
    with pytest.raises(ValueError):
        assign({"a": 1.0}, 0)


def test_on_the_measured_default_matrix_the_slowest_of_three_shards_is_near_the_mean(cases):
    """default_durations.json: a cold run of matrix.yaml. Shards judged by what the cases took."""
    from resnetbench import results
    from resnetbench.shard import DEFAULT_DURATIONS, claims_cost

    durations = durations_from(results.load(DEFAULT_DURATIONS))
    CLAIMS_S = claims_cost(cases, 224, durations)
    assert 80 < CLAIMS_S < 100  # measured: 723 s of wall time, 632 s in the cases
    assert len(durations) >= 38 and set(durations) <= {c.id for c in cases}

    def slowest_over_mean(split):
        totals = [sum(durations.get(c.id, 0.0) for c in split(k)) + (CLAIMS_S if k == 1 else 0.0) for k in (1, 2, 3)]
        return max(totals) / (sum(totals) / 3)

    on_durations = slowest_over_mean(lambda k: shard_cases(cases, k, 3, 224, durations))
    on_the_model = slowest_over_mean(lambda k: shard_cases(cases, k, 3, 224))
    by_position = slowest_over_mean(lambda k: [c for i, c in enumerate(cases) if i % 3 == k - 1])
    assert on_durations <= 1.05 and on_the_model <= 1.25 < by_position, (on_durations, on_the_model, by_position)


def test_the_cost_model_is_fitted_on_the_shipped_durations(cases):
    """Each fitted factor reproduces the median of its measured cases (an independent recount)."""
    import json
    import statistics

    from resnetbench.shard import DEFAULT_DURATIONS, GMACS_224

    data = json.loads(DEFAULT_DURATIONS.read_text())
    run = [c for c in data["cases"] if c["outcome"] != "skipped"]
    eager_fp32 = [c["duration_s"] / GMACS_224[c["arch"]] for c in run if (c["backend"], c["dtype"]) == ("eager", "fp32")]
    r18 = next(c for c in cases if c.id == "resnet18-fp32-none-eager-b1")
    assert model_cost(r18, 224) == pytest.approx(GMACS_224["resnet18"] * statistics.median(eager_fp32))
    assert len(eager_fp32) == 5


ZERO = """
matrix:
  arch: [resnet18]
  backend: [eager]
  exclude: [{arch: resnet18}]
claims: false
"""
TWO = """
matrix:
  arch: [resnet18]
  backend: [eager, onnxruntime]
input_size: 32
claims: false
"""


def test_a_matrix_of_no_cases_is_refused_everywhere(run_matrix, pytester, capsys):
    from resnetbench.cli import main

    result, data = run_matrix(ZERO)
    assert result.ret == pytest.ExitCode.USAGE_ERROR and data is None
    result.stderr.fnmatch_lines(["*the matrix expands to no cases*"])
    assert "INTERNALERROR" not in result.stdout.str() + result.stderr.str()
    assert main(["validate", str(pytester.path / "m.yaml")]) == 2
    assert "expands to no cases" in capsys.readouterr().err


def test_a_shard_with_no_cases_passes_and_records_its_shard(run_matrix):
    result, data = run_matrix(TWO, "--shard", "3/3")
    assert result.ret == 0, result.stdout.str()[-2000:]
    assert "INTERNALERROR" not in result.stdout.str()
    assert data["cases"] == [] and data["shard"] == "3/3" and len(data["matrix_cases"]) == 2


def test_own_suite_under_xdist_runs_its_heaviest_files_first():
    from types import SimpleNamespace

    from conftest import heaviest_files_first

    ids = ["tests/a.py::x", "tests/a.py::y", "tests/b.py::z", "tests/c.py::w", "tests/c.py::v"]
    items = [SimpleNamespace(nodeid=i) for i in ids]
    cost = {"tests/a.py::x": 1.0, "tests/a.py::y": 2.0, "tests/b.py::z": 90.0, "tests/c.py::w": 5.0,
            "tests/c.py::v": 0.5}
    ordered = [i.nodeid for i in heaviest_files_first(items, cost)]  # type: ignore[arg-type]
    # b (90 s) before c (5.5 s) before a (3 s); a file's own tests keep their order
    assert ordered == ["tests/b.py::z", "tests/c.py::w", "tests/c.py::v", "tests/a.py::x", "tests/a.py::y"]
