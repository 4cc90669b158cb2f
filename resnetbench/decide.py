"""``resnetbench decide``: which configuration to ship, from a results file and a scenario.

The guide's closing question (§5): pick the model and the optimisation for the deployment
scenario, the accuracy requirement and the latency constraint. A scenario states
constraints and an objective (``SCENARIOS`` has the guide's edge and cloud; a YAML file may
state its own). Every passed case of the results is a candidate, and each constraint is
decided on the case's measured figures:

- ``satisfies``: every constraint is met;
- ``fails``: a measured figure breaks a constraint (the nearest are shown when none satisfies);
- ``undecided``: nothing fails, but a figure a constraint or the objective needs is missing
  (not measured in this run, or undecidable, such as a top-1 drop on unlabelled data). A
  missing figure is never taken as good.

Among the satisfying configurations, the Pareto set over the scenario's figures (accuracy
drop, latency or capacity, size, memory; each where every candidate has it) is listed, and
the pick is the best on the objective, with the figures that make it beat the runner-up; an
exact tie on the objective is broken by the next figures in ``FIGURES`` order and said so.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

# Each figure a scenario may constrain or optimise: (what it is, unit, better direction).
FIGURES: dict[str, tuple[str, str, str]] = {
    "top1_drop_points": ("task top-1 drop against fp32", "points", "min"),
    "p99_ms": ("p99 latency of one call", "ms", "min"),
    "median_ms": ("median latency of one call", "ms", "min"),
    "server_qps": ("Server queries/s with p99 within the bound (LoadGen)", "q/s", "max"),
    "offline_ips": ("Offline throughput", "images/s", "max"),
    "artifact_mb": ("artifact size", "MB", "min"),
    "peak_memory_mb": ("peak resident memory of inference", "MB", "min"),
}
# Constraint keys: max_<figure> or min_<figure> (for figures where more is better).
SCENARIOS: dict[str, dict[str, Any]] = {
    # §4.1: small models, int8, on-device; real-time at batch 1
    "edge": {"description": "the guide's edge (§4.1): on-device, real-time at batch 1, a small artifact",
             "batch": 1,
             "constraints": {"max_artifact_mb": 50, "max_top1_drop_points": 1.0, "max_p99_ms": 50},
             "objective": {"minimize": "p99_ms"}},
    # §4.2: capacity under a latency bound (MLPerf's ResNet-50 Server bound is 15 ms)
    "cloud": {"description": "the guide's cloud (§4.2): the most queries/s with p99 within 15 ms",
              "server_p99_ms": 15,
              "constraints": {"max_top1_drop_points": 1.0, "min_server_qps": 1},
              "objective": {"maximize": "server_qps"}},
}


class ScenarioError(ValueError):
    """A scenario that cannot be used; the message names the problem."""


@dataclass(frozen=True)
class Scenario:
    name: str
    description: str
    constraints: dict[str, float]
    objective: tuple[str, str]  # ("minimize" | "maximize", figure)
    batch: int | None = None  # only cases at this batch size are candidates (real-time: 1)
    # server_qps counts only where LoadGen's Server bound was at most this (ms)
    server_p99_ms: float | None = None

    @staticmethod
    def load(spec: str) -> Scenario:
        """A built-in scenario by name, or a YAML file with the same keys."""
        if spec in SCENARIOS:
            return Scenario.parse(spec, SCENARIOS[spec])
        path = Path(spec)
        if not path.is_file():
            raise ScenarioError(f"--scenario: {spec!r} is neither a built-in scenario "
                                f"({', '.join(SCENARIOS)}) nor a file")
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8"))
        except (OSError, yaml.YAMLError) as exc:
            raise ScenarioError(f"--scenario: {path}: cannot be read as YAML ({exc})") from None
        return Scenario.parse(str(path), data)

    @staticmethod
    def parse(name: str, data: Any) -> Scenario:
        if not isinstance(data, dict):
            raise ScenarioError(f"{name}: a scenario is a mapping with constraints: and objective:")
        unknown = set(data) - {"description", "constraints", "objective", "batch", "server_p99_ms"}
        if unknown:
            raise ScenarioError(f"{name}: unknown key(s) {sorted(unknown)}; allowed: description, constraints, "
                                f"objective, batch, server_p99_ms")
        constraints = data.get("constraints") or {}
        if not isinstance(constraints, dict):
            raise ScenarioError(f"{name}: constraints: must be a mapping such as {{max_artifact_mb: 50}}")
        for key, limit in constraints.items():
            bound, _, figure = str(key).partition("_")
            if bound not in ("max", "min") or figure not in FIGURES:
                raise ScenarioError(f"{name}: constraints.{key}: not a constraint; write max_FIGURE or min_FIGURE "
                                    f"with FIGURE one of {', '.join(FIGURES)}")
            if isinstance(limit, bool) or not isinstance(limit, int | float) or not math.isfinite(limit):
                raise ScenarioError(f"{name}: constraints.{key}: {limit!r} is not a number")
        objective = data.get("objective") or {}
        if not (isinstance(objective, dict) and len(objective) == 1
                and next(iter(objective)) in ("minimize", "maximize")
                and next(iter(objective.values())) in FIGURES):
            raise ScenarioError(f"{name}: objective: must be {{minimize: FIGURE}} or {{maximize: FIGURE}} with "
                                f"FIGURE one of {', '.join(FIGURES)}")
        batch = data.get("batch")
        if batch is not None and (isinstance(batch, bool) or not isinstance(batch, int) or batch < 1):
            raise ScenarioError(f"{name}: batch: {batch!r} is not a positive whole number")
        server_bound = data.get("server_p99_ms")
        if server_bound is not None and (isinstance(server_bound, bool) or not isinstance(server_bound, int | float)
                                         or not server_bound > 0):
            raise ScenarioError(f"{name}: server_p99_ms: {server_bound!r} is not a positive number of milliseconds")
        (sense, figure), = objective.items()
        return Scenario(name, str(data.get("description", "")), {str(k): float(v) for k, v in constraints.items()},
                        (sense, figure), batch, None if server_bound is None else float(server_bound))


@dataclass
class Verdict:
    """One configuration under a scenario."""

    case_id: str
    figures: dict[str, float | None]
    status: str = "satisfies"  # satisfies | fails | undecided
    failed: list[str] = field(default_factory=list)  # each broken constraint, with the figure
    missing: list[str] = field(default_factory=list)  # each figure that could not be decided, with why
    violation: float = 0.0  # sum of relative excesses over the broken limits (the nearest first)


def figures_of(case: dict[str, Any]) -> tuple[dict[str, float | None], dict[str, str]]:
    """A case's figures, and why each missing one is missing."""
    figures: dict[str, float | None] = {}
    why: dict[str, str] = {}
    size = case.get("size") or {}
    figures["artifact_mb"] = size.get("artifact_mb")
    if figures["artifact_mb"] is None:
        why["artifact_mb"] = "no size record"
    task = (case.get("accuracy") or {}).get("task")
    if not task:
        figures["top1_drop_points"] = None
        why["top1_drop_points"] = "no labelled data in this run (dataset: digits or an image folder with labels)"
    elif task.get("undecidable"):
        figures["top1_drop_points"] = None
        why["top1_drop_points"] = str(task["undecidable"])
    else:
        figures["top1_drop_points"] = task.get("drop_points")
    latency = case.get("latency") or {}
    figures["median_ms"] = latency.get("median_ms")
    figures["p99_ms"] = latency.get("p99_ms")
    if figures["median_ms"] is None:
        why["median_ms"] = why["p99_ms"] = "not timed in this run"
    elif figures["p99_ms"] is None:
        why["p99_ms"] = f"too few samples for a p99 ({latency.get('rounds')} rounds; set latency.rounds)"
    scenarios = case.get("scenarios") or {}
    figures["server_qps"] = (scenarios.get("server") or {}).get("qps")
    figures["offline_ips"] = (scenarios.get("offline") or {}).get("samples_per_s")
    for key, name in (("server_qps", "Server"), ("offline_ips", "Offline")):
        if figures[key] is None:
            why[key] = f"no LoadGen {name} run for this case (the matrix's scenarios:)"
    server = scenarios.get("server") or {}
    if server and figures["server_qps"] is None:
        why["server_qps"] = (f"LoadGen found no Server rate with p99 within {server.get('p99_bound_ms')} ms: "
                             f"{server.get('reason') or 'no valid run'}")
    deployment = case.get("deployment") or {}
    figures["peak_memory_mb"] = deployment.get("inference_peak_mb")
    if figures["peak_memory_mb"] is None:
        why["peak_memory_mb"] = "memory not measured (the matrix's deployment:)"
    return figures, why


def judge(case: dict[str, Any], scenario: Scenario) -> Verdict:
    """The case's status under the scenario's constraints and objective."""
    figures, why = figures_of(case)
    measured_at = ((case.get("scenarios") or {}).get("server") or {}).get("p99_bound_ms")
    if figures.get("server_qps") is not None and scenario.server_p99_ms is not None and (
            measured_at is None or measured_at > scenario.server_p99_ms):
        # capacity under a looser bound is not capacity under this one
        figures = {**figures, "server_qps": None}
        why["server_qps"] = (f"Server capacity was measured with p99 within {measured_at} ms; this scenario "
                             f"needs it within {scenario.server_p99_ms:g} ms (the matrix's scenarios.server.p99_ms)")
    verdict = Verdict(case["id"], figures)
    for key, limit in scenario.constraints.items():
        bound, _, figure = key.partition("_")
        value = figures.get(figure)
        unit = FIGURES[figure][1]
        if value is None:
            verdict.missing.append(f"{figure}: {why.get(figure, 'missing')}")
            continue
        broken = value > limit if bound == "max" else value < limit
        if broken:
            verdict.failed.append(f"{key} {limit:g} {unit}: measured {value:.4g} {unit}")
            verdict.violation += abs(value - limit) / max(abs(limit), 1e-9)
    sense, objective = scenario.objective
    if figures.get(objective) is None and not any(m.startswith(f"{objective}:") for m in verdict.missing):
        verdict.missing.append(f"{objective} (the objective): {why.get(objective, 'missing')}")
    verdict.status = "fails" if verdict.failed else ("undecided" if verdict.missing else "satisfies")
    return verdict


def _better(a: float, b: float, direction: str) -> bool:
    return a < b if direction == "min" else a > b


def pareto(verdicts: list[Verdict], dims: list[str]) -> list[Verdict]:
    """The configurations no other one beats on every figure in ``dims`` (and strictly on one)."""
    def dominates(x: Verdict, y: Verdict) -> bool:
        pairs = [(x.figures[d], y.figures[d], FIGURES[d][2]) for d in dims]
        return all(a == b or _better(a, b, s) for a, b, s in pairs) and any(  # type: ignore[arg-type]
            _better(a, b, s) for a, b, s in pairs)  # type: ignore[arg-type]

    return [v for v in verdicts if not any(dominates(o, v) for o in verdicts if o is not v)]


@dataclass
class Decision:
    scenario: Scenario
    verdicts: list[Verdict]
    not_candidates: list[tuple[str, str]]  # (case id, why it is not a candidate)
    front: list[Verdict]
    front_dims: list[str]
    pick: Verdict | None
    runner_up: Verdict | None
    tie_broken_by: str | None

    def to_dict(self) -> dict[str, Any]:
        def one(v: Verdict | None) -> dict[str, Any] | None:
            return None if v is None else {"id": v.case_id, "status": v.status, "figures": v.figures,
                                           "failed": v.failed, "missing": v.missing}

        return {"scenario": self.scenario.name, "pick": one(self.pick), "runner_up": one(self.runner_up),
                "tie_broken_by": self.tie_broken_by, "front": [v.case_id for v in self.front],
                "front_figures": self.front_dims, "configurations": [one(v) for v in self.verdicts],
                "not_candidates": [{"id": i, "why": w} for i, w in self.not_candidates]}


def decide(results: dict[str, Any], scenario: Scenario) -> Decision:
    """Judge every passed case of ``results`` under ``scenario``; the front, the pick and its runner-up."""
    verdicts, not_candidates = [], []
    for case in results.get("cases", []):
        if case.get("outcome") != "passed":
            not_candidates.append((case["id"], f"outcome {case.get('outcome')}: {case.get('reason') or 'not passed'}"))
        elif scenario.batch is not None and case.get("batch") != scenario.batch:
            not_candidates.append((case["id"], f"batch {case.get('batch')}: the scenario runs at batch {scenario.batch}"))
        else:
            verdicts.append(judge(case, scenario))
    sense, objective = scenario.objective
    satisfying = [v for v in verdicts if v.status == "satisfies"]
    # the scenario's figures, each where every satisfying configuration has it
    wanted = [objective] + [k.partition("_")[2] for k in scenario.constraints]
    dims = [f for f in FIGURES if f in wanted and all(v.figures.get(f) is not None for v in satisfying)]
    front = pareto(satisfying, dims) if satisfying else []
    order = [objective] + [f for f in FIGURES if f != objective and f in dims]

    def key(v: Verdict) -> tuple[float, ...]:
        # the objective in the scenario's sense, the other figures in their own better direction
        signs = [1 if sense == "minimize" else -1] + [1 if FIGURES[f][2] == "min" else -1 for f in order[1:]]
        return tuple(sign * float(v.figures[f]) for sign, f in zip(signs, order, strict=True))  # type: ignore[arg-type]

    ranked = sorted(satisfying, key=lambda v: (key(v), v.case_id))
    pick = ranked[0] if ranked else None
    runner_up = ranked[1] if len(ranked) > 1 else None
    tie = None
    if pick and runner_up and pick.figures[objective] == runner_up.figures[objective]:
        tie = next((f for f in order[1:] if pick.figures[f] != runner_up.figures[f]), "case id")
    verdicts.sort(key=lambda v: ({"satisfies": 0, "undecided": 1, "fails": 2}[v.status], v.violation, v.case_id))
    return Decision(scenario, verdicts, not_candidates, front, dims, pick, runner_up, tie)


def _figure(v: Verdict, f: str) -> str:
    value = v.figures.get(f)
    return "—" if value is None else f"{value:.4g} {FIGURES[f][1]}"


def format_decision(d: Decision) -> str:
    """The decision as text: the pick and why, the front, and every configuration's status."""
    s = d.scenario
    sense, objective = s.objective
    limits = ", ".join(f"{k} {v:g}" for k, v in s.constraints.items()) or "none"
    lines = [f"scenario {s.name}: {s.description}".rstrip(": "),
             f"constraints: {limits}; objective: {sense} {objective}" + (f"; batch {s.batch}" if s.batch else "")]
    if d.pick is not None:
        lines.append(f"pick: {d.pick.case_id} ({objective} {_figure(d.pick, objective)})")
        if d.runner_up is not None:
            better: list[str] = []
            worse: list[str] = []
            for f in dict.fromkeys([objective, *d.front_dims]):
                mine, theirs = d.pick.figures.get(f), d.runner_up.figures.get(f)
                if mine is None or theirs is None or mine == theirs:
                    continue
                # the objective in the scenario's sense, the rest in their own better direction
                direction = ("min" if sense == "minimize" else "max") if f == objective else FIGURES[f][2]
                (better if _better(mine, theirs, direction) else worse).append(
                    f"{f} {_figure(d.pick, f)} vs {_figure(d.runner_up, f)}")
            lines.append(f"  beats the runner-up {d.runner_up.case_id} on: {'; '.join(better) or 'nothing'}")
            if worse:
                lines.append(f"  and is worse on: {'; '.join(worse)}")
            if d.tie_broken_by:
                lines.append(f"  tied on {objective}; the tie is broken by {d.tie_broken_by}")
        lines.append(f"Pareto set over {', '.join(d.front_dims)}: {', '.join(v.case_id for v in d.front)}")
    else:
        undecided = sum(v.status == "undecided" for v in d.verdicts)
        lines.append("pick: none — no configuration satisfies every constraint on measured figures"
                     + (f" ({undecided} undecided: a figure they need is missing)" if undecided else ""))
        nearest = [v for v in d.verdicts if v.status == "fails"][:3]
        for v in nearest:
            lines.append(f"  nearest: {v.case_id} fails {'; '.join(v.failed)}")
    for status in ("satisfies", "undecided", "fails"):
        group = [v for v in d.verdicts if v.status == status]
        if not group:
            continue
        lines.append(f"{status} ({len(group)}):")
        for v in group:
            why = "; ".join(v.failed) if status == "fails" else ("; ".join(v.missing) if status == "undecided" else "")
            lines.append(f"  {v.case_id}" + (f": {why}" if why else ""))
    if d.not_candidates:
        lines.append(f"not candidates ({len(d.not_candidates)}):")
        lines.extend(f"  {case_id}: {why}" for case_id, why in d.not_candidates)
    return "\n".join(lines)
