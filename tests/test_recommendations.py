"""C10-C12, the guide's recommendations, judged on hand-made results (recommendations.py)."""

from __future__ import annotations

from typing import Any

from resnetbench.recommendations import c10_edge, c11_cloud, c12_sparse, judge_all


def case(arch: str, dtype: str, compression: str, backend: str, *, mb: float = 10.0, drop: float | None = 0.2,
         p99: float | None = 10.0, median: float | None = None, qps: float | None = None, bound: float = 15.0,
         outcome: str = "passed", served: bool = False) -> dict[str, Any]:
    out: dict[str, Any] = {"id": f"{arch}-{dtype}-{compression}-{backend}-b1", "arch": arch, "dtype": dtype,
                           "compression": compression, "backend": backend, "batch": 1, "outcome": outcome,
                           "reason": "", "size": {"artifact_mb": mb},
                           "accuracy": {"task": None if drop is None else {"drop_points": drop, "undecidable": None}}}
    if p99 is not None:
        out["latency"] = {"median_ms": median if median is not None else p99 * 0.8, "p99_ms": p99, "rounds": 100}
    if served or qps is not None:
        out["scenarios"] = {"server": {"qps": qps, "p99_bound_ms": bound}}
    return out


def results(*cases: dict[str, Any], flags: tuple[str, ...] = ("avx512f",)) -> dict[str, Any]:
    return {"cases": list(cases), "environment": {"cpu_flags": list(flags)}}


def test_c10_holds_when_a_guide_edge_configuration_is_on_the_front():
    r = results(case("resnet18", "int8", "static", "openvino", mb=11, p99=4),
                case("resnet18", "fp32", "none", "eager", mb=45, p99=9),
                case("resnet50", "fp32", "none", "onnxruntime", mb=98, p99=20))
    c = c10_edge(r)
    assert c["verdict"] == "holds" and c["details"]["guide_on_front"] == ["resnet18-int8-static-openvino-b1"]
    assert "pick resnet18-int8-static-openvino-b1" in c["measured"]


def test_c10_is_refuted_when_the_guide_pick_is_dominated_and_undecided_without_it():
    # the fp32 case is smaller? no: faster and as small, so it dominates the int8 one on the edge front
    r = results(case("resnet18", "int8", "static", "litert", mb=11, p99=30),
                case("resnet18", "fp16", "none", "eager", mb=11, p99=5, drop=0.1))
    c = c10_edge(r)
    assert c["verdict"] == "refuted" and "none of the guide's on it" in c["measured"]
    assert c10_edge(results(case("resnet18", "fp32", "none", "eager")))["verdict"] == "undecided"
    # measured but failed is not measured
    assert c10_edge(results(case("resnet18", "int8", "static", "litert", outcome="failed")))["verdict"] == "undecided"


def test_c10_without_labels_cannot_decide_the_drop_constraint():
    r = results(case("resnet18", "int8", "static", "litert", drop=None))
    c = c10_edge(r)
    assert c["verdict"] == "undecided" and "top1_drop_points" in c["measured"]


def test_c11_compares_fp16_capacity_with_the_best_alternative_at_the_same_bound():
    fp16 = case("resnet50", "fp16", "none", "onnxruntime", qps=None, served=True)  # searched, no valid rate
    int8 = case("resnet50", "int8", "static", "openvino", qps=64.9)
    c = c11_cloud(results(fp16, int8))
    assert c["verdict"] == "refuted" and "none q/s" in c["measured"] and "no fp16 arithmetic units" in c["measured"]
    near = c11_cloud(results(case("resnet50", "fp16", "none", "torchscript", qps=60.0), int8,
                             flags=("avx512_fp16",)))
    assert near["verdict"] == "holds" and "fp16 arithmetic" not in near["measured"]  # 60 >= 0.9 * 64.9
    assert c11_cloud(results(case("resnet50", "fp16", "none", "torchscript", qps=50.0), int8))["verdict"] == "refuted"
    # no alternative, or bounds that differ: cannot decide
    assert c11_cloud(results(fp16))["verdict"] == "undecided"
    other_bound = case("resnet50", "int8", "static", "openvino", qps=700.0, bound=100.0)
    assert c11_cloud(results(case("resnet50", "fp16", "none", "torchscript", qps=50.0), other_bound))["verdict"] \
        == "undecided"


def test_c12_reports_pruned_over_unpruned_latency_per_backend():
    r = results(case("resnet18", "fp32", "none", "eager", median=10.0),
                case("resnet18", "fp32", "prune-l1-unstructured", "eager", median=10.2),
                case("resnet18", "fp32", "prune-channels", "eager", median=6.0),
                case("resnet18", "fp32", "none", "onnxruntime", median=8.0),
                case("resnet18", "fp32", "prune-l1-unstructured", "onnxruntime", median=7.9))
    c = c12_sparse(r)
    assert c["verdict"] == "refuted"
    assert c["details"]["ratios"]["prune-l1-unstructured"] == {"eager": 1.02, "onnxruntime": 7.9 / 8.0}
    assert "channels eager 0.60x" in c["measured"] and "no backend runs unstructured sparsity faster" in c["measured"]
    sparse_runtime = results(case("resnet18", "fp32", "none", "openvino", median=10.0),
                             case("resnet18", "fp32", "prune-l1-unstructured", "openvino", median=5.0))
    assert c12_sparse(sparse_runtime)["verdict"] == "holds"
    # a pruned case without its unpruned twin says nothing
    assert c12_sparse(results(case("resnet18", "fp32", "prune-l1-unstructured", "eager")))["verdict"] == "undecided"


def test_only_decided_recommendations_go_into_the_reports_claims():
    r = results(case("resnet18", "fp32", "none", "eager"))
    assert [c["verdict"] for c in judge_all(r)] == ["undecided"] * 3
    assert judge_all(r, decided_only=True) == []
    assert all(c["expected_verdict"] for c in judge_all(r))


def test_c12_prefers_the_paired_ratio_over_raw_medians_timed_minutes_apart():
    def paired(compression: str, median: float, case_ms: float, reference_ms: float) -> dict[str, Any]:
        c = case("resnet18", "fp32", compression, "onnxruntime", median=median)
        c["latency"]["paired"] = {"case_ms": [case_ms] * 8, "reference_ms": [reference_ms] * 8}
        return c

    # the pruned case was timed while the machine ran 1.5x faster: raw 0.67x, paired 1.00x
    r = results(paired("none", 0.9, 0.9, 0.9), paired("prune-l1-unstructured", 0.6, 0.6, 0.6))
    c = c12_sparse(r)
    assert c["details"]["ratios"]["prune-l1-unstructured"] == {"onnxruntime": 1.0}
    assert c["verdict"] == "refuted" and "unpaired" not in c["measured"]
