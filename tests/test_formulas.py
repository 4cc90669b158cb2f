"""Closed-form parameter counts and bytes, against torchvision's published numbers."""

from __future__ import annotations

import pytest

from resnetbench.formulas import (
    MB,
    MIB,
    SPECS,
    count_resnet,
    dtype_bytes,
    formula_bytes,
    sizes_table,
)

# torchvision's model documentation (``num_params`` of each weights enum), typed in by hand.
PUBLISHED = {
    "resnet18": 11_689_512,
    "resnet34": 21_797_672,
    "resnet50": 25_557_032,
    "resnet101": 44_549_160,
    "resnet152": 60_192_808,
}
# The guide's rounded figures, in millions.
GUIDE_M = {"resnet18": 11.7, "resnet34": 21.8, "resnet50": 25.6, "resnet101": 44.5, "resnet152": 60.2}
# Features into fc: 512 for BasicBlock nets, 512 * 4 for Bottleneck nets.
FC_IN = {"resnet18": 512, "resnet34": 512, "resnet50": 2048, "resnet101": 2048, "resnet152": 2048}
# BatchNorm layers: stem + 2 (basic) or 3 (bottleneck) per block + one per downsampling shortcut.
BN_LAYERS = {
    "resnet18": 1 + 2 * 8 + 3,
    "resnet34": 1 + 2 * 16 + 3,
    "resnet50": 1 + 3 * 16 + 4,
    "resnet101": 1 + 3 * 33 + 4,
    "resnet152": 1 + 3 * 50 + 4,
}


@pytest.mark.parametrize("arch", list(PUBLISHED))
def test_count_equals_torchvision_published(arch: str) -> None:
    assert count_resnet(SPECS[arch]).params == PUBLISHED[arch]


@pytest.mark.parametrize("arch", list(PUBLISHED))
def test_count_rounds_to_the_guide(arch: str) -> None:
    assert round(count_resnet(SPECS[arch]).params / 1e6, 1) == GUIDE_M[arch]


@pytest.mark.parametrize("arch", list(PUBLISHED))
@pytest.mark.parametrize("k", [10, 1, 37])
def test_num_classes_changes_only_the_fc_term(arch: str, k: int) -> None:
    full, small = count_resnet(SPECS[arch]), count_resnet(SPECS[arch], num_classes=k)
    f = FC_IN[arch]
    assert small.params == PUBLISHED[arch] - (f * 1000 + 1000) + (f * k + k)
    assert (small.bn_buffers, small.bn_layers, small.tensors) == (full.bn_buffers, full.bn_layers, full.tensors)


@pytest.mark.parametrize("arch", list(PUBLISHED))
def test_bn_layer_count(arch: str) -> None:
    assert count_resnet(SPECS[arch]).bn_layers == BN_LAYERS[arch]


def test_resnet50_bn_running_statistics() -> None:
    # DESIGN.md: resnet50 holds 53,120 running-statistic floats (mean + var)
    assert count_resnet(SPECS["resnet50"]).bn_buffers == 53_120


@pytest.mark.parametrize(("dtype", "nbytes"), [("fp32", 4), ("fp16", 2), ("bf16", 2), ("int8", 1)])
def test_dtype_bytes(dtype: str, nbytes: int) -> None:
    assert dtype_bytes(dtype) == nbytes


def test_dtype_bytes_agree_with_torch() -> None:
    torch = pytest.importorskip("torch")
    names = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16, "int8": torch.int8}
    for name, dt in names.items():
        assert dtype_bytes(name) == torch.empty(0, dtype=dt).element_size()


@pytest.mark.parametrize("bad", ["fp64", "FP32", "float32", ""])
def test_dtype_bytes_rejects_unknown(bad: str) -> None:
    with pytest.raises(ValueError) as info:
        dtype_bytes(bad)
    msg = str(info.value)
    assert repr(bad) in msg
    for allowed in ("fp32", "fp16", "bf16", "int8"):
        assert allowed in msg


def test_sizes_table_has_every_arch_at_every_dtype() -> None:
    rows = sizes_table()
    assert len(rows) == 5 * 4
    assert {(r["arch"], r["dtype"]) for r in rows} == {
        (a, d) for a in PUBLISHED for d in ("fp32", "fp16", "bf16", "int8")
    }


def test_sizes_table_values() -> None:
    rows = {(r["arch"], r["dtype"]): r for r in sizes_table()}
    r18 = rows[("resnet18", "fp32")]
    assert r18["params"] == 11_689_512
    assert r18["bytes"] == 46_758_048
    assert r18["mb"] == pytest.approx(46.758048)
    assert r18["mib"] == pytest.approx(46_758_048 / 1_048_576)
    assert rows[("resnet50", "int8")]["bytes"] == 25_557_032
    assert rows[("resnet152", "bf16")]["bytes"] == 120_385_616


def test_mb_is_decimal_and_mib_binary() -> None:
    assert MB == 1_000_000
    assert MIB == 1_048_576
    row = next(r for r in sizes_table() if r["arch"] == "resnet101" and r["dtype"] == "fp16")
    assert row["mb"] / row["mib"] == pytest.approx(1.048576)
    assert row["mib"] < row["mb"]


def test_formula_bytes_splits_params_and_buffers() -> None:
    f = formula_bytes(count_resnet(SPECS["resnet50"]), "fp16", buffers_dtype="fp32")
    assert f.param_bytes == 25_557_032 * 2
    # running mean/var stay fp32, plus one int64 num_batches_tracked per BN layer
    assert f.buffer_bytes == 53_120 * 4 + 53 * 8
    assert f.total_bytes == 51_114_064 + 212_480 + 424
    d = f.to_dict()
    assert d["formula_bytes"] == f.total_bytes
    assert d["formula_mb"] == pytest.approx(51.326968)


def test_formula_bytes_rejects_unknown_dtype() -> None:
    with pytest.raises(ValueError, match="fp64"):
        formula_bytes(count_resnet(SPECS["resnet18"]), "fp64")


def test_count_matches_a_real_torchvision_model() -> None:
    torchvision = pytest.importorskip("torchvision")
    model = torchvision.models.resnet18(num_classes=10)
    count = count_resnet(SPECS["resnet18"], num_classes=10)
    assert count.params == sum(p.numel() for p in model.parameters())
    running = sum(b.numel() for name, b in model.named_buffers() if "running_" in name)
    assert count.bn_buffers == running
    assert count.bn_layers == sum(1 for name, _ in model.named_buffers() if name.endswith("num_batches_tracked"))
    assert count.tensors == len(model.state_dict())


@pytest.mark.parametrize("arch", ["resnet18", "resnet50"])
@pytest.mark.parametrize("dtype,bias_dtype", [("fp32", "fp32"), ("fp16", "fp32"), ("fp16", "fp16")])
def test_folded_formula_equals_a_really_folded_model(arch: str, dtype: str, bias_dtype: str) -> None:
    """BatchNorm folded by torch.fx (an independent folding) leaves exactly the tensors the formula counts."""
    import torch
    import torchvision
    from torch.fx.experimental.optimization import fuse

    from resnetbench.backends.size import folded_formula, inventory

    model = getattr(torchvision.models, arch)(num_classes=10).eval()
    folded = fuse(model)
    weights = sum(p.numel() for n, p in folded.named_parameters() if n.endswith("weight"))
    biases = sum(p.numel() for n, p in folded.named_parameters() if n.endswith("bias"))
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in folded.modules())
    formula = folded_formula(inventory(model), dtype, bias_dtype, "folded")
    assert formula.total_bytes == weights * dtype_bytes(dtype) + biases * dtype_bytes(bias_dtype)
    assert formula.buffer_bytes == 0 and formula.params == sum(p.numel() for p in model.parameters())
