"""The guide's deployment recommendations as claims with verdicts, judged on a run's results.

C1-C9 (``claims.py``) check figures against real models; C10-C12 check *advice*, so they
need measured cases: they are judged from a results file (the report and ``resnetbench
decide`` add them), and a run without the cases a claim needs leaves it ``undecided``, with
what to run (``matrices/scenarios.yaml`` runs all three).

- **C10 (edge, §4.1):** ResNet-18/34 in INT8 on LiteRT, Core ML, OpenVINO or TensorRT.
  Holds when such a configuration is on the Pareto front of the configurations that meet
  the edge scenario's constraints (``decide.SCENARIOS['edge']``); refuted when they were
  measured and none is.
- **C11 (cloud, §4.2):** ResNet-50/101 FP16 with multi-stream on TorchScript or ONNX Runtime
  for high concurrency. Holds when the best such configuration's Server capacity (LoadGen,
  p99 within the same bound) is at least ``C11_WITHIN`` of the best measured alternative's;
  refuted when it is lower, or serves no rate within the bound.
- **C12 (sparse, §3.1 and §5):** pruning makes CPU inference faster, sparse computation
  being the guide's "future direction". For each backend, a pruned case's latency over its
  unpruned twin's (same architecture, dtype, backend, batch; timed cases, passed or not),
  each relative to the latency reference timed beside it (``_relative_speed``). Refuted when no
  backend runs unstructured pruning at least ``C12_FASTER`` faster; channel pruning's
  ratios are reported beside it (it removes work, so it should be faster).
"""

from __future__ import annotations

import statistics
from typing import Any

from resnetbench.decide import Scenario, decide

EXPECTED = {"C10": "holds", "C11": "refuted", "C12": "refuted"}
C10_BACKENDS = ("litert", "coreml", "openvino", "tensorrt")
C11_BACKENDS = ("torchscript", "onnxruntime")
C11_WITHIN = 0.9  # "the capacity the alternatives give": at least 90% of the best alternative's
C12_FASTER = 0.9  # a pruned case at most 0.9x its twin's median latency counts as faster
UNSTRUCTURED, CHANNELS = "prune-l1-unstructured", "prune-channels"


def _claim(cid: str, claim: str, stated: str, measured: str, verdict: str, details: dict[str, Any]) -> dict[str, Any]:
    return {"id": cid, "claim": claim, "stated": stated, "measured": measured, "verdict": verdict,
            "expected_verdict": EXPECTED[cid], "details": details, "checks": [], "source": "results"}


def _passed(results: dict[str, Any]) -> list[dict[str, Any]]:
    return [c for c in results.get("cases", []) if c.get("outcome") == "passed"]


def c10_edge(results: dict[str, Any]) -> dict[str, Any]:
    claim = "Edge: ResNet-18/34 in INT8 on LiteRT, Core ML, OpenVINO or TensorRT"
    stated = "ResNet-18/34 INT8 (6-12 MB) on TensorRT, Core ML, TFLite"
    guide = {c["id"] for c in _passed(results) if c.get("arch") in ("resnet18", "resnet34")
             and c.get("dtype") == "int8" and c.get("backend") in C10_BACKENDS}
    if not guide:
        return _claim("C10", claim, stated, "no passed ResNet-18/34 int8 case on " + ", ".join(C10_BACKENDS)
                      + " in this run (matrices/scenarios.yaml runs them)", "undecided", {})
    decision = decide(results, Scenario.load("edge"))
    front = [v.case_id for v in decision.front]
    on_front = sorted(guide & set(front))
    pick = decision.pick.case_id if decision.pick else None
    if decision.pick is None:
        reasons = {v.case_id: v.failed or v.missing for v in decision.verdicts if v.case_id in guide}
        return _claim("C10", claim, stated, "no configuration meets the edge constraints; the guide's: "
                      + "; ".join(f"{i}: {', '.join(r)}" for i, r in sorted(reasons.items())),
                      "undecided" if any(v.status == "undecided" for v in decision.verdicts) else "refuted",
                      {"front": front, "pick": None})
    measured = (f"front under the edge constraints: {', '.join(front)}; pick {pick}"
                + (f"; the guide's on it: {', '.join(on_front)}" if on_front else "; none of the guide's on it"))
    return _claim("C10", claim, stated, measured, "holds" if on_front else "refuted",
                  {"front": front, "pick": pick, "guide_on_front": on_front, "guide_measured": sorted(guide)})


def _capacity(case: dict[str, Any]) -> tuple[float | None, float | None]:
    server = (case.get("scenarios") or {}).get("server") or {}
    return server.get("qps"), server.get("p99_bound_ms")


def c11_cloud(results: dict[str, Any]) -> dict[str, Any]:
    claim = "Cloud: ResNet-50/101 FP16 with multi-stream on TorchScript or ONNX Runtime gives the most capacity"
    stated = "ResNet-50/101 FP16 on TorchScript or ONNX Runtime, multi-stream, for high concurrency"
    measured_cases = [c for c in _passed(results) if (c.get("scenarios") or {}).get("server")]
    guide = [c for c in measured_cases if c.get("arch") in ("resnet50", "resnet101") and c.get("dtype") == "fp16"
             and c.get("backend") in C11_BACKENDS]
    others = [c for c in measured_cases if c not in guide and c.get("arch") in ("resnet50", "resnet101")]
    if not guide or not others:
        return _claim("C11", claim, stated, "needs LoadGen Server capacity of a ResNet-50/101 fp16 case on "
                      "TorchScript or ONNX Runtime and of an alternative at the same bound (matrices/cloud.yaml)",
                      "undecided", {})
    bounds = {_capacity(c)[1] for c in measured_cases}
    if len(bounds) != 1:
        return _claim("C11", claim, stated, f"Server bounds differ between cases ({sorted(map(str, bounds))} ms): "
                      "capacities are not comparable", "undecided", {})
    bound = bounds.pop()

    def best(cases: list[dict[str, Any]]) -> tuple[str, float | None]:
        qps = [(c["id"], _capacity(c)[0]) for c in cases]
        served = [(i, q) for i, q in qps if q is not None]
        return max(served, key=lambda iq: iq[1]) if served else (qps[0][0], None)

    (gid, gqps), (oid, oqps) = best(guide), best(others)
    flags = (results.get("environment") or {}).get("cpu_flags") or []
    fp16_note = "" if "avx512_fp16" in flags or "amx_fp16" in flags else \
        "; this CPU has no fp16 arithmetic units (no AVX512-FP16/AMX-FP16): fp16 runs converted, not faster"
    text = (f"within p99 {bound:g} ms: guide's best {gid} {'none' if gqps is None else f'{gqps:.4g}'} q/s, "
            f"best alternative {oid} {'none' if oqps is None else f'{oqps:.4g}'} q/s{fp16_note}")
    if oqps is None:
        verdict = "holds" if gqps is not None else "undecided"
    else:
        verdict = "holds" if gqps is not None and gqps >= C11_WITHIN * oqps else "refuted"
    return _claim("C11", claim, stated, text, verdict,
                  {"bound_ms": bound, "guide": {"id": gid, "qps": gqps}, "alternative": {"id": oid, "qps": oqps}})


def c12_sparse(results: dict[str, Any]) -> dict[str, Any]:
    claim = "Pruning makes CPU inference faster (sparse computation, §5)"
    stated = "pruning keeps accuracy and shrinks the model; hardware-accelerated sparse computation"
    # every timed case, passed or not: a pruned model that misses its accuracy tolerance still
    # says how fast the runtime runs it
    cases = {(c.get("arch"), c.get("dtype"), c.get("compression"), c.get("backend"), c.get("batch")): c
             for c in results.get("cases", []) if (c.get("latency") or {}).get("median_ms")}
    ratios: dict[str, dict[str, list[float]]] = {UNSTRUCTURED: {}, CHANNELS: {}}
    unpaired: list[str] = []
    for (arch, dtype, compression, backend, batch), case in cases.items():
        twin = cases.get((arch, dtype, "none", backend, batch))
        if compression in ratios and twin is not None:
            pruned, dense = _relative_speed(case), _relative_speed(twin)
            if pruned is None or dense is None:  # raw medians, timed minutes apart
                pruned, dense = case["latency"]["median_ms"], twin["latency"]["median_ms"]
                unpaired.append(case["id"])
            ratios[compression].setdefault(str(backend), []).append(pruned / dense)
    if not ratios[UNSTRUCTURED]:
        return _claim("C12", claim, stated, f"needs {UNSTRUCTURED} cases timed beside their unpruned twins "
                      "(matrices/scenarios.yaml)", "undecided", {})
    per_backend = {method: {b: statistics.median(r) for b, r in sorted(by.items())} for method, by in ratios.items()}

    def show(method: str) -> str:
        return ", ".join(f"{b} {r:.2f}x" for b, r in per_backend[method].items()) or "not measured"

    faster = [b for b, r in per_backend[UNSTRUCTURED].items() if r <= C12_FASTER]
    text = (f"latency pruned / unpruned (median): unstructured {show(UNSTRUCTURED)}; channels {show(CHANNELS)}"
            + (f"; unstructured faster on {', '.join(faster)}" if faster else
               "; no backend runs unstructured sparsity faster"))
    if unpaired:
        text += f"; unpaired (raw medians) for {', '.join(sorted(unpaired))}"
    return _claim("C12", claim, stated, text, "holds" if faster else "refuted",
                  {"ratios": per_backend, "unpaired": sorted(unpaired)})


def _relative_speed(case: dict[str, Any]) -> float | None:
    """The median of a case's paired call times over the latency reference's right before each
    (``measure/latency_reference.py``): the machine's speed of the moment cancels. A pruned case
    and its twin share the reference (dense ResNet-18 of the same backend and dtype), so the
    ratio of their relative speeds is their latency ratio; their raw medians, timed minutes
    apart on a machine whose speed moves 10-20%, are not."""
    paired = (case.get("latency") or {}).get("paired") or {}
    case_ms, reference_ms = paired.get("case_ms"), paired.get("reference_ms")
    if not case_ms or not reference_ms or len(case_ms) != len(reference_ms):
        return None
    return statistics.median(c / r for c, r in zip(case_ms, reference_ms, strict=True) if r > 0)


RECOMMENDATIONS = {"C10": c10_edge, "C11": c11_cloud, "C12": c12_sparse}


def judge_all(results: dict[str, Any], decided_only: bool = False) -> list[dict[str, Any]]:
    """C10-C12 on a results file, as claim dicts (the shape ``claims.ClaimResult.to_dict`` gives);
    ``decided_only``: without those a run cannot decide (the reports' claims tables: a matrix
    without the cases a recommendation needs says nothing about it)."""
    judged = [judge(results) for judge in RECOMMENDATIONS.values()]
    return [c for c in judged if c["verdict"] != "undecided"] if decided_only else judged


def format_recommendations(claims: list[dict[str, Any]]) -> str:
    return "\n".join(f"{c['id']} {c['verdict']} (expected {c['expected_verdict']}): {c['claim']}\n    {c['measured']}"
                     for c in claims)
