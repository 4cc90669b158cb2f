"""Closed-form parameter counts and bytes per dtype for torchvision's ResNets.

No torch here: the formulas are an independent account of what the real model and
artifact should hold, so a size test compares two things computed different ways.
"""

from __future__ import annotations

from dataclasses import dataclass

# Bytes per stored element; the one place that knows the allowed dtype strings.
DTYPE_BYTES: dict[str, int] = {"fp32": 4, "fp16": 2, "bf16": 2, "int8": 1}
MB = 10**6  # the guide's unit
MIB = 2**20

# Published parameter counts (torchvision's model docs), the guide's rounded figures
# and the FP32 sizes it states. Independent of the formula below.
TORCHVISION_PARAMS: dict[str, int] = {
    "resnet18": 11_689_512,
    "resnet34": 21_797_672,
    "resnet50": 25_557_032,
    "resnet101": 44_549_160,
    "resnet152": 60_192_808,
}
GUIDE_PARAMS_M: dict[str, float] = {
    "resnet18": 11.7,
    "resnet34": 21.8,
    "resnet50": 25.6,
    "resnet101": 44.5,
    "resnet152": 60.2,
}
GUIDE_FP32_MB: dict[str, float] = {
    "resnet18": 46.8,
    "resnet34": 87.2,
    "resnet50": 102.4,
    "resnet101": 178.0,
    "resnet152": 240.8,
}


@dataclass(frozen=True)
class ResNetSpec:
    """Block type and blocks per stage: all that fixes a torchvision ResNet's shapes."""

    bottleneck: bool
    layers: tuple[int, int, int, int]
    width: int = 64

    @property
    def expansion(self) -> int:
        return 4 if self.bottleneck else 1


SPECS: dict[str, ResNetSpec] = {
    "resnet18": ResNetSpec(False, (2, 2, 2, 2)),
    "resnet34": ResNetSpec(False, (3, 4, 6, 3)),
    "resnet50": ResNetSpec(True, (3, 4, 6, 3)),
    "resnet101": ResNetSpec(True, (3, 4, 23, 3)),
    "resnet152": ResNetSpec(True, (3, 8, 36, 3)),
}


@dataclass(frozen=True)
class ParamCount:
    """Parameters and BatchNorm buffers of a ResNet, counted from its spec."""

    params: int
    bn_buffers: int  # running_mean + running_var floats
    bn_layers: int  # one int64 num_batches_tracked each
    tensors: int  # parameter + buffer tensors in a state_dict

    def to_dict(self) -> dict[str, int]:
        return {
            "params": self.params,
            "bn_buffers": self.bn_buffers,
            "bn_layers": self.bn_layers,
            "tensors": self.tensors,
        }


def count_resnet(spec: ResNetSpec, num_classes: int = 1000) -> ParamCount:
    """Count parameters of torchvision's ResNet layout (convs without bias, BN, fc)."""
    params = bn_channels = bn_layers = convs = 0

    def conv(cin: int, cout: int, k: int) -> None:
        nonlocal params, convs
        params += cin * cout * k * k
        convs += 1

    def bn(c: int) -> None:
        nonlocal params, bn_channels, bn_layers
        params += 2 * c
        bn_channels += c
        bn_layers += 1

    conv(3, spec.width, 7)
    bn(spec.width)
    inplanes = spec.width
    for stage, blocks in enumerate(spec.layers):
        planes = spec.width * 2**stage
        for block in range(blocks):
            stride = 2 if stage > 0 and block == 0 else 1
            out = planes * spec.expansion
            if spec.bottleneck:
                conv(inplanes, planes, 1)
                bn(planes)
                conv(planes, planes, 3)
                bn(planes)
                conv(planes, out, 1)
                bn(out)
            else:
                conv(inplanes, planes, 3)
                bn(planes)
                conv(planes, planes, 3)
                bn(planes)
            if stride != 1 or inplanes != out:
                conv(inplanes, out, 1)
                bn(out)
            inplanes = out
    params += inplanes * num_classes + num_classes
    # tensors: conv weights, BN (weight, bias, mean, var, count), fc weight + bias
    tensors = convs + 5 * bn_layers + 2
    return ParamCount(params, 2 * bn_channels, bn_layers, tensors)


def dtype_bytes(dtype: str) -> int:
    """Bytes per element of a dtype string; raises on one outside the allowed set."""
    try:
        return DTYPE_BYTES[dtype]
    except KeyError:
        allowed = ", ".join(DTYPE_BYTES)
        raise ValueError(f"unknown dtype {dtype!r}; allowed: {allowed}") from None


@dataclass(frozen=True)
class SizeFormula:
    """Expected bytes of a model's weights: parameters at the dtype, buffers apart."""

    params: int
    dtype: str
    param_bytes: int
    buffer_bytes: int
    extra_bytes: int = 0  # what stays wider in quantized models (scales, biases, ...)
    extra_detail: str = ""

    @property
    def total_bytes(self) -> int:
        return self.param_bytes + self.buffer_bytes + self.extra_bytes

    def to_dict(self) -> dict[str, object]:
        return {
            "params": self.params,
            "dtype": self.dtype,
            "param_bytes": self.param_bytes,
            "buffer_bytes": self.buffer_bytes,
            "extra_bytes": self.extra_bytes,
            "extra_detail": self.extra_detail,
            "formula_bytes": self.total_bytes,
            "formula_mb": self.total_bytes / MB,
            "formula_mib": self.total_bytes / MIB,
        }


def formula_bytes(
    count: ParamCount, dtype: str, *, buffers_dtype: str | None = None
) -> SizeFormula:
    """Params x bytes per element, BN running stats at ``buffers_dtype`` plus int64 counters."""
    per = dtype_bytes(dtype)
    buf_per = dtype_bytes(buffers_dtype or dtype)
    return SizeFormula(
        params=count.params,
        dtype=dtype,
        param_bytes=count.params * per,
        buffer_bytes=count.bn_buffers * buf_per + count.bn_layers * 8,
    )


def sizes_table() -> list[dict[str, object]]:
    """The formula size of every architecture at every dtype (params x bytes, MB and MiB)."""
    rows: list[dict[str, object]] = []
    for arch, spec in SPECS.items():
        count = count_resnet(spec)
        for dtype, per in DTYPE_BYTES.items():
            nbytes = count.params * per
            rows.append(
                {
                    "arch": arch,
                    "dtype": dtype,
                    "params": count.params,
                    "bytes": nbytes,
                    "mb": nbytes / MB,
                    "mib": nbytes / MIB,
                }
            )
    return rows


@dataclass(frozen=True)
class QuantLayout:
    """How a quantizer stores a model: which layers are int8 and what stays wider."""

    quantized: frozenset[str]  # "conv", "linear"
    per_channel: bool
    scale_bytes: int
    zero_point_bytes: int
    bias_bytes: int
    bn_folded: bool
    description: str
