"""Matrix expansion: GitHub Actions' include/exclude semantics, case ids, tolerance precedence."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest

from resnetbench.config import Config
from resnetbench.matrix import Case, expand, expand_combinations, tolerances_for

# Built-in limits as the module's sources state them (see matrix.py's comments).
FP32 = {"rel_l2": 1e-4, "centered_rel_l2": 1e-3, "top1_agreement": 0.99}
FP16 = {"centered_cosine": 0.99, "spread_error": 0.1, "top1_agreement": 0.99}
STATIC = {"centered_cosine": 0.4, "spread_error": 0.5, "top1_drop_points": 1.0, "top1_ratio": 0.99}
PRUNE_L1 = {"top1_drop_points": 5.0}


def config(matrix: dict[str, Any], **kwargs: Any) -> Config:
    return Config(path=Path("m.yaml"), matrix=matrix, **kwargs)


def ids(cfg: Config) -> list[str]:
    return [c.id for c in expand(cfg)]


def by_id(cfg: Config) -> dict[str, Case]:
    return {c.id: c for c in expand(cfg)}


# --- case ids ---------------------------------------------------------------------------


def test_case_id_format_matches_the_contract() -> None:
    case = Case(arch="resnet50", dtype="int8", compression="static", backend="onnxruntime", batch=1)
    assert case.id == "resnet50-int8-static-onnxruntime-b1"
    assert Case("resnet18", "fp16", "prune-channels", "onnxruntime-tensorrt", 32).id == (
        "resnet18-fp16-prune-channels-onnxruntime-tensorrt-b32"
    )


def test_case_to_dict_carries_id_and_axes() -> None:
    d = Case("resnet34", "bf16", "none", "openvino", 4, tolerances={"cosine": 0.5}).to_dict()
    assert d["id"] == "resnet34-bf16-none-openvino-b4"
    assert {k: d[k] for k in ("arch", "dtype", "compression", "backend", "batch")} == {
        "arch": "resnet34",
        "dtype": "bf16",
        "compression": "none",
        "backend": "openvino",
        "batch": 4,
    }
    assert d["tolerances"] == {"cosine": 0.5}


def test_unlisted_axes_take_defaults() -> None:
    assert ids(config({"arch": ["resnet50"]})) == ["resnet50-fp32-none-eager-b1"]
    assert ids(config({"backend": ["onnxruntime"]})) == ["resnet18-fp32-none-onnxruntime-b1"]


# --- cartesian product and order ------------------------------------------------------------


def test_cartesian_product_in_written_order() -> None:
    cfg = config(
        {
            "arch": ["resnet50", "resnet18"],  # deliberately not sorted
            "dtype": ["fp32", "fp16"],
            "backend": ["onnxruntime", "eager"],
            "batch": [8, 1],
        }
    )
    expected = [
        f"{a}-{d}-none-{b}-b{n}"
        for a in ("resnet50", "resnet18")
        for d in ("fp32", "fp16")
        for b in ("onnxruntime", "eager")
        for n in (8, 1)
    ]
    assert len(expected) == 16
    assert ids(cfg) == expected


def test_order_is_stable_and_input_untouched() -> None:
    matrix = {
        "arch": ["resnet18", "resnet50"],
        "dtype": ["fp32", "int8"],
        "compression": ["none", "static"],
        "exclude": [{"dtype": "int8", "compression": "none"}, {"dtype": "fp32", "compression": "static"}],
        "include": [{"arch": "resnet34", "backend": "openvino"}, {"dtype": "int8", "tolerances": {"cosine": 0.9}}],
    }
    before = copy.deepcopy(matrix)
    first = ids(config(matrix))
    second = ids(config(matrix))
    assert first == second
    assert matrix == before
    assert first == [
        "resnet18-fp32-none-eager-b1",
        "resnet18-int8-static-eager-b1",
        "resnet50-fp32-none-eager-b1",
        "resnet50-int8-static-eager-b1",
        "resnet34-fp32-none-openvino-b1",
    ]


# --- exclude ------------------------------------------------------------------------------


def test_exclude_partial_match_drops_every_matching_combination() -> None:
    cfg = config(
        {
            "arch": ["resnet18", "resnet50"],
            "dtype": ["fp32", "fp16"],
            "backend": ["eager", "onnxruntime"],
            "exclude": [{"arch": "resnet50", "dtype": "fp16"}],
        }
    )
    got = ids(cfg)
    assert len(got) == 8 - 2
    assert not [i for i in got if i.startswith("resnet50-fp16")]
    assert "resnet18-fp16-none-eager-b1" in got and "resnet50-fp32-none-onnxruntime-b1" in got


def test_exclude_needs_all_its_keys_to_match() -> None:
    cfg = config(
        {
            "arch": ["resnet18", "resnet50"],
            "backend": ["eager", "onnxruntime"],
            "exclude": [{"arch": "resnet50", "backend": "eager"}, {"arch": "resnet152"}],
        }
    )
    assert ids(cfg) == [
        "resnet18-fp32-none-eager-b1",
        "resnet18-fp32-none-onnxruntime-b1",
        "resnet50-fp32-none-onnxruntime-b1",
    ]


def test_exclude_on_a_default_axis() -> None:
    cfg = config({"arch": ["resnet18", "resnet50"], "exclude": [{"backend": "eager", "arch": "resnet18"}]})
    assert ids(cfg) == ["resnet50-fp32-none-eager-b1"]


# --- include ------------------------------------------------------------------------------


def test_include_extends_matching_combinations_without_adding_cases() -> None:
    cfg = config(
        {
            "arch": ["resnet18", "resnet50"],
            "dtype": ["fp32", "fp16"],
            "include": [{"dtype": "fp16", "tolerances": {"cosine": 0.98}}],
        }
    )
    cases = by_id(cfg)
    assert len(cases) == 4
    assert cases["resnet18-fp16-none-eager-b1"].tolerances == {**FP16, "cosine": 0.98}
    assert cases["resnet50-fp16-none-eager-b1"].tolerances == {**FP16, "cosine": 0.98}
    assert cases["resnet50-fp32-none-eager-b1"].tolerances == FP32


def test_include_with_only_tolerances_applies_to_every_case() -> None:
    cfg = config({"arch": ["resnet18", "resnet50"], "include": [{"tolerances": {"max_abs": 0.25}}]})
    cases = expand(cfg)
    assert len(cases) == 2
    assert all(c.tolerances == {**FP32, "max_abs": 0.25} for c in cases)


def test_include_never_overwrites_an_axis_value() -> None:
    cfg = config(
        {
            "arch": ["resnet18"],
            "dtype": ["fp32"],
            "include": [{"arch": "resnet18", "dtype": "fp16", "tolerances": {"cosine": 0.5}}],
        }
    )
    cases = by_id(cfg)
    # the fp32 case keeps its dtype and its tolerances; the entry becomes a case of its own
    assert list(cases) == ["resnet18-fp32-none-eager-b1", "resnet18-fp16-none-eager-b1"]
    assert cases["resnet18-fp32-none-eager-b1"].tolerances == FP32
    assert cases["resnet18-fp16-none-eager-b1"].tolerances == {**FP16, "cosine": 0.5}


def test_include_matching_nothing_adds_one_case_with_defaults() -> None:
    cfg = config(
        {
            "arch": ["resnet18", "resnet50"],
            "dtype": ["fp16"],
            "backend": ["eager"],
            "batch": [4],
            "include": [{"arch": "resnet50", "backend": "openvino"}],
        }
    )
    # dtype and batch are not named by the entry: the defaults (fp32, 1), not the axes' values
    assert ids(cfg) == [
        "resnet18-fp16-none-eager-b4",
        "resnet50-fp16-none-eager-b4",
        "resnet50-fp32-none-openvino-b1",
    ]


def test_include_without_arch_takes_the_first_listed_arch() -> None:
    cfg = config({"arch": ["resnet101", "resnet18"], "include": [{"backend": "openvino", "dtype": "bf16"}]})
    assert ids(cfg)[-1] == "resnet101-bf16-none-openvino-b1"


def test_include_adds_back_an_excluded_combination() -> None:
    # GitHub Actions processes exclude first, so include can restore a combination
    cfg = config(
        {
            "arch": ["resnet18", "resnet50"],
            "backend": ["eager", "onnxruntime"],
            "exclude": [{"arch": "resnet50"}],
            "include": [{"arch": "resnet50", "backend": "onnxruntime"}],
        }
    )
    assert ids(cfg) == [
        "resnet18-fp32-none-eager-b1",
        "resnet18-fp32-none-onnxruntime-b1",
        "resnet50-fp32-none-onnxruntime-b1",
    ]


def test_include_only_matrix_expands_to_its_entries() -> None:
    cfg = config(
        {
            "include": [
                {"arch": "resnet50", "dtype": "int8", "compression": "static", "backend": "onnxruntime"},
                {"arch": "resnet18", "batch": 16},
            ]
        }
    )
    # no phantom default case: like GitHub Actions, no axes means no base product
    assert ids(cfg) == ["resnet50-int8-static-onnxruntime-b1", "resnet18-fp32-none-eager-b16"]


def test_later_include_overrides_earlier_include_tolerance() -> None:
    cfg = config(
        {
            "arch": ["resnet18", "resnet50"],
            "include": [
                {"tolerances": {"cosine": 0.9, "max_abs": 1.0}},
                {"arch": "resnet50", "tolerances": {"cosine": 0.8}},
            ],
        }
    )
    cases = by_id(cfg)
    assert cases["resnet18-fp32-none-eager-b1"].tolerances == {**FP32, "cosine": 0.9, "max_abs": 1.0}
    assert cases["resnet50-fp32-none-eager-b1"].tolerances == {**FP32, "cosine": 0.8, "max_abs": 1.0}


def test_ids_unique_when_includes_repeat_a_combination() -> None:
    cfg = config(
        {
            "arch": ["resnet18"],
            "include": [
                {"arch": "resnet50", "backend": "openvino"},
                {"arch": "resnet50", "backend": "openvino", "tolerances": {"cosine": 0.97}},
                {"arch": "resnet18", "backend": "eager"},
            ],
        }
    )
    got = expand(cfg)
    assert [c.id for c in got] == ["resnet18-fp32-none-eager-b1", "resnet50-fp32-none-openvino-b1"]
    # the second entry extends the combination the first one added, so its tolerance holds
    assert got[1].tolerances["cosine"] == 0.97


def test_ids_unique_on_a_large_matrix() -> None:
    cfg = config(
        {
            "arch": ["resnet18", "resnet34", "resnet50"],
            "dtype": ["fp32", "fp16", "bf16", "int8"],
            "compression": ["none", "dynamic", "static"],
            "backend": ["eager", "onnxruntime", "openvino"],
            "batch": [1, 8],
            "include": [{"arch": "resnet152", "backend": "compile"}, {"dtype": "int8", "tolerances": {"cosine": 0.9}}],
        }
    )
    got = ids(cfg)
    assert len(got) == 3 * 4 * 3 * 3 * 2 + 1
    assert len(set(got)) == len(got)


def test_expand_combinations_marks_include_overrides() -> None:
    combos = expand_combinations(
        {"arch": ["resnet18"], "include": [{"arch": "resnet18", "tolerances": {"cosine": 0.7}}]}
    )
    assert combos == [
        {
            "arch": "resnet18",
            "dtype": "fp32",
            "compression": "none",
            "backend": "eager",
            "batch": 1,
            "tolerances": {"cosine": 0.7},
        }
    ]


# --- tolerance precedence --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("dtype", "compression", "expected"),
    [
        ("fp32", "none", FP32),
        ("fp16", "none", FP16),
        ("bf16", "none", {"centered_cosine": 0.85, "spread_error": 0.2, "top1_agreement": 0.99}),
        ("int8", "static", STATIC),
        ("int8", "dynamic", {"centered_cosine": 0.6, "spread_error": 0.4, "top1_agreement": 0.95,
                             "top1_drop_points": 1.0, "top1_ratio": 0.99}),
        # a compressed float model is judged by its method's limits, not by fp32's rel_l2 <= 1e-4
        ("fp32", "prune-l1-unstructured", PRUNE_L1),
        ("fp16", "prune-channels", {"top1_drop_points": 10.0}),
        ("fp32", "distill", {"top1_agreement": 0.5}),
    ],
)
def test_builtin_defaults(dtype: str, compression: str, expected: dict[str, float]) -> None:
    assert tolerances_for(config({"arch": ["resnet18"]}), dtype, compression) == expected


def test_matrix_dtype_block_beats_builtin_defaults() -> None:
    cfg = config({"arch": ["resnet18"]}, tolerances={"dtype": {"fp32": {"rel_l2": 1e-3}, "int8": {"cosine": 0.98}}})
    assert tolerances_for(cfg, "fp32", "none") == {**FP32, "rel_l2": 1e-3}
    # a limit the user wrote for int8 is not replaced by static's built-in limits
    assert tolerances_for(cfg, "int8", "static") == {**STATIC, "cosine": 0.98}


def test_matrix_compression_block_beats_matrix_dtype_block() -> None:
    cfg = config(
        {"arch": ["resnet18"]},
        tolerances={"dtype": {"int8": {"cosine": 0.98, "max_abs": 2.0}}, "compression": {"static": {"cosine": 0.97}}},
    )
    assert tolerances_for(cfg, "int8", "static") == {**STATIC, "cosine": 0.97, "max_abs": 2.0}
    # the compression block applies only to its own method
    assert tolerances_for(cfg, "int8", "dynamic")["cosine"] == 0.98


def test_include_override_beats_everything() -> None:
    cfg = config(
        {
            "arch": ["resnet18"],
            "dtype": ["int8"],
            "compression": ["static"],
            "include": [{"compression": "static", "tolerances": {"cosine": 0.96, "top1_ratio": 0.9}}],
        },
        tolerances={
            "dtype": {"int8": {"cosine": 0.98}},
            "compression": {"static": {"cosine": 0.97, "top1_ratio": 0.995}},
        },
    )
    [case] = expand(cfg)
    assert case.tolerances == {**STATIC, "cosine": 0.96, "top1_ratio": 0.9}


def test_size_tolerance_defaults_and_override_per_case() -> None:
    assert expand(config({"arch": ["resnet18"]}))[0].size_tolerance == {"relative": 0.02, "absolute_bytes": 262144}
    cfg = config({"arch": ["resnet18", "resnet50"]}, tolerances={"size": {"relative": 0.05}})
    a, b = expand(cfg)
    assert a.size_tolerance == {"relative": 0.05, "absolute_bytes": 256 * 1024}
    a.size_tolerance["relative"] = 0.5  # one case's dict is its own
    assert b.size_tolerance["relative"] == 0.05


def test_case_tolerances_are_independent_copies() -> None:
    a, b = expand(config({"arch": ["resnet18", "resnet50"]}))
    a.tolerances["rel_l2"] = 1.0
    assert b.tolerances == FP32
    assert expand(config({"arch": ["resnet18"]}))[0].tolerances == FP32


def test_compression_settings_reach_their_cases() -> None:
    cfg = config(
        {"arch": ["resnet18"], "compression": ["none", "prune-l1-unstructured"]},
        compression_settings={"prune-l1-unstructured": {"amount": 0.3}},
    )
    cases = by_id(cfg)
    assert cases["resnet18-fp32-prune-l1-unstructured-eager-b1"].settings == {"amount": 0.3}
    assert cases["resnet18-fp32-none-eager-b1"].settings == {}


def test_a_matrix_that_excludes_every_combination_is_an_error_naming_the_file() -> None:
    from resnetbench.config import ConfigError

    cfg = config({"arch": ["resnet18"], "backend": ["eager"], "exclude": [{"arch": "resnet18"}]})
    with pytest.raises(ConfigError, match="expands to no cases"):
        expand(cfg)
