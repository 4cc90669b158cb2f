"""Size: the model's real parameter count, the closed-form bytes, and the artifact's bytes.

For float dtypes the formula is parameters x bytes per element, BatchNorm running
statistics counted apart. For int8 it counts int8 weights of the layers the quantizer
touched plus what stays wider: per-channel (or per-tensor) scales and zero points,
biases, and layers left in fp32. Each backend declares the layout of its int8 paths
(``Backend.int8_layout``), and converters that fold BatchNorm away pick ``folded_formula``
(``Backend.size_formula``).
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field
from typing import Any

from torch import nn

from resnetbench.formulas import MB, MIB, QuantLayout, SizeFormula, dtype_bytes


@dataclass(frozen=True)
class Inventory:
    """Parameters of a model by layer kind, counted from its real shapes."""

    params: int
    bn_buffer_floats: int
    bn_layers: int
    conv: list[tuple[int, int, int]]  # (weight numel, out channels, bias numel)
    linear: list[tuple[int, int, int]]
    bn_channels: int
    # module names of the conv and linear layers, in the same order (a budget's float layers are named)
    conv_names: list[str] = field(default_factory=list)
    linear_names: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"params": self.params, "bn_buffer_floats": self.bn_buffer_floats, "bn_layers": self.bn_layers}


def inventory(model: nn.Module) -> Inventory:
    """Count parameters and buffers of an unquantized model, layer by layer."""
    conv, linear = [], []
    conv_names, linear_names = [], []
    bn_channels = bn_layers = 0
    for name, m in model.named_modules():
        if isinstance(m, nn.Conv2d):
            conv.append((m.weight.numel(), m.out_channels, m.bias.numel() if m.bias is not None else 0))
            conv_names.append(name)
        elif isinstance(m, nn.Linear):
            linear.append((m.weight.numel(), m.out_features, m.bias.numel() if m.bias is not None else 0))
            linear_names.append(name)
        elif isinstance(m, nn.BatchNorm2d):
            bn_channels += m.num_features
            bn_layers += 1
    params = sum(p.numel() for p in model.parameters())
    return Inventory(params, 2 * bn_channels, bn_layers, conv, linear, bn_channels, conv_names, linear_names)


def float_formula(inv: Inventory, dtype: str) -> SizeFormula:
    """Params x bytes per element; BN running stats at the same width plus int64 counters."""
    per = dtype_bytes(dtype)
    return SizeFormula(inv.params, dtype, inv.params * per, inv.bn_buffer_floats * per + inv.bn_layers * 8)


def int8_formula(inv: Inventory, layout: QuantLayout, float_layers: Collection[str] = ()) -> SizeFormula:
    """int8 weights of quantized layers plus scales, zero points, biases and fp32 leftovers;
    ``float_layers`` (module names) stay fp32, their bias one per output channel when BN is folded."""
    int8_weights = 0
    wider = 0
    unknown = set(float_layers) - {*inv.conv_names, *inv.linear_names}
    if unknown:
        raise ValueError(f"float layers not in the model: {', '.join(sorted(unknown))}")
    for kind, layers, names in (("conv", inv.conv, inv.conv_names), ("linear", inv.linear, inv.linear_names)):
        for (numel, out, bias), name in zip(layers, names or [""] * len(layers), strict=True):
            if name in float_layers:
                wider += (numel + (out if layout.bn_folded and kind == "conv" else bias)) * 4
            elif kind in layout.quantized:
                int8_weights += numel
                qparams = out if layout.per_channel else 1
                wider += qparams * (layout.scale_bytes + layout.zero_point_bytes)
                bias_numel = out if layout.bn_folded and kind == "conv" else bias
                wider += bias_numel * layout.bias_bytes
            else:
                wider += (numel + bias) * 4
    if layout.bn_folded:
        bn_bytes = 0
    else:
        bn_bytes = inv.bn_channels * 2 * 4 + inv.bn_buffer_floats * 4 + inv.bn_layers * 8
    return SizeFormula(inv.params, "int8", int8_weights, bn_bytes, wider, layout.description)


def folded_formula(inv: Inventory, dtype: str, bias_dtype: str, description: str) -> SizeFormula:
    """Converters that fold BatchNorm into the convolution before it (as edge-runtime
    converters do): conv and fc weights at ``dtype``, one bias per conv output channel plus
    fc's bias at ``bias_dtype``, and no BatchNorm tensors left."""
    weights = sum(numel for numel, _, _ in (*inv.conv, *inv.linear))
    biases = sum(out for _, out, _ in inv.conv) + sum(bias for _, _, bias in inv.linear)
    return SizeFormula(inv.params, dtype, weights * dtype_bytes(dtype), 0, biases * dtype_bytes(bias_dtype), description)


def size_record(inv: Inventory, formula: SizeFormula, files: dict[str, int], tolerance: dict[str, float]) -> dict[str, Any]:
    """Formula, artifact and the verdict of one case's size test (``formula``: the backend's ``size_formula``)."""
    artifact = sum(files.values())
    expected = formula.total_bytes
    allowed = expected * tolerance["relative"] + tolerance["absolute_bytes"]
    return {
        **formula.to_dict(),
        "buffers": inv.bn_buffer_floats,
        "artifact_bytes": artifact,
        "artifact_mb": artifact / MB,
        "artifact_mib": artifact / MIB,
        "artifact_files": files,
        "ratio": artifact / expected if expected else None,
        "allowed_deviation_bytes": int(allowed),
        "within_tolerance": abs(artifact - expected) <= allowed,
        "tolerance": dict(tolerance),
    }


def explain(record: dict[str, Any]) -> str:
    """Expected, actual and the breakdown, for a failure message."""
    files = ", ".join(f"{k}={v:,}" for k, v in record["artifact_files"].items())
    return (
        f"artifact {record['artifact_bytes']:,} B vs formula {record['formula_bytes']:,} B "
        f"(ratio {record['ratio']:.4f}, allowed +/-{record['allowed_deviation_bytes']:,} B). "
        f"Formula: {record['params']:,} params -> {record['param_bytes']:,} B at {record['dtype']}, "
        f"buffers {record['buffer_bytes']:,} B, wider parts {record['extra_bytes']:,} B "
        f"{('(' + record['extra_detail'] + ')') if record['extra_detail'] else ''}. Files: {files}"
    )
