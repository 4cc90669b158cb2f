"""The guide's claims, checked against real models and real serialized files.

Each claim is measured, then judged; the verdict the project expects is written down
here, so a library change that flips a verdict fails ``test_claim``. Each result also
carries ``checks``: measured numbers next to independently known values (torchvision's
published counts, closed-form formulas), asserted by the tests.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import torch
from torch import nn

from resnetbench.cache import ArtifactCache
from resnetbench.formulas import GUIDE_FP32_MB, GUIDE_PARAMS_M, MB, SPECS, TORCHVISION_PARAMS, count_resnet
from resnetbench.models import build_model

EXPECTED = {
    "C1": "holds",
    "C2": "holds",
    "C3": "refuted",
    "C4": "refuted",
    "C5": "holds",
    "C6": "refuted",
    "C7": "holds",
    "C8": "refuted",
    "C9": "holds",
}


@dataclass
class ClaimResult:
    """A claim, what the guide states, what was measured, and the verdict."""

    id: str
    claim: str
    stated: str
    measured: str
    verdict: str
    details: dict[str, Any] = field(default_factory=dict)
    checks: list[tuple[str, float, float]] = field(default_factory=list)  # (what, measured, known)

    @property
    def expected_verdict(self) -> str:
        return EXPECTED[self.id]

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "claim": self.claim,
            "stated": self.stated,
            "measured": self.measured,
            "verdict": self.verdict,
            "expected_verdict": self.expected_verdict,
            "details": self.details,
            "checks": [list(c) for c in self.checks],
        }


def state_dict_bytes(model: nn.Module) -> int:
    """Bytes of ``torch.save(model.state_dict())``: the real serialized file."""
    buf = io.BytesIO()
    torch.save(model.state_dict(), buf)
    return len(buf.getvalue())


def params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def verdict(ok: bool) -> str:
    return "holds" if ok else "refuted"


def c1_params_and_fp32_sizes(cache: ArtifactCache) -> ClaimResult:
    measured: list[str] = []
    checks: list[tuple[str, float, float]] = []
    ok = True
    details: dict[str, Any] = {}
    for arch, stated_mb in GUIDE_FP32_MB.items():
        model = build_model(arch)
        n = params(model)
        file_mb = state_dict_bytes(model) / MB
        checks.append((f"{arch} params", n, TORCHVISION_PARAMS[arch]))
        checks.append((f"{arch} params closed form", n, count_resnet(SPECS[arch]).params))
        rounds = round(n / 1e6, 1) == GUIDE_PARAMS_M[arch]
        close = abs(n * 4 / MB - stated_mb) / stated_mb < 0.01
        ok &= rounds and close
        details[arch] = {"params": n, "params_x4_mb": n * 4 / MB, "state_dict_mb": file_mb, "stated_mb": stated_mb}
        measured.append(f"{arch} {n / 1e6:.2f}M / {n * 4 / MB:.1f} MB (file {file_mb:.1f} MB)")
    return ClaimResult("C1", "Parameter counts and FP32 sizes (params x 4 bytes)",
                       "11.7M/46.8, 21.8M/87.2, 25.6M/102.4, 44.5M/178, 60.2M/240.8 MB",
                       "; ".join(measured), verdict(ok), details, checks)


def _int8_artifact_mb(arch: str, cache: ArtifactCache, backend: str = "onnxruntime",
                      compression: str = "static") -> tuple[float, dict[str, int]]:
    """The real int8 artifact of ``arch`` on a backend's own int8 path (built through the cache);
    by default ONNX Runtime's static QDQ model."""
    from resnetbench.build import build_case
    from resnetbench.config import Config
    from resnetbench.environment import default_threads
    from resnetbench.matrix import Case

    config = Config(path=Path("<claims>"), matrix={}, input_size=64,
                    compression_settings={"static": {"calibration_samples": 16}})
    settings = {"calibration_samples": 16} if compression == "static" else {}
    case = Case(arch, "int8", compression, backend, 1, settings=settings)
    built = build_case(config, case, cache, default_threads())
    return sum(built.files.values()) / MB, built.files


def c2_fp16_half_int8_quarter(cache: ArtifactCache) -> ClaimResult:
    model = build_model("resnet50")
    fp32 = state_dict_bytes(model) / MB
    fp16 = state_dict_bytes(model.half()) / MB
    int8, files = _int8_artifact_mb("resnet50", cache)
    n = TORCHVISION_PARAMS["resnet50"]
    ok = abs(fp16 - 51.2) / 51.2 < 0.02 and abs(int8 - 25.6) / 25.6 < 0.05
    return ClaimResult(
        "C2", "FP16 halves the size, INT8 quarters it (ResNet-50)", "51.2 MB fp16, 25.6 MB int8",
        f"fp32 file {fp32:.1f} MB, fp16 file {fp16:.1f} MB ({fp16 / fp32:.3f}x), int8 static QDQ ONNX {int8:.1f} MB ({int8 / fp32:.3f}x)",
        verdict(ok), {"fp32_mb": fp32, "fp16_mb": fp16, "int8_mb": int8, "int8_files": files},
        [("fp16 params bytes", n * 2, 2 * TORCHVISION_PARAMS["resnet50"])],
    )


def c3_dynamic_quarter(cache: ArtifactCache) -> ClaimResult:
    model = build_model("resnet50")
    before = state_dict_bytes(model)
    q = torch.ao.quantization.quantize_dynamic(model, {nn.Linear}, dtype=torch.qint8)
    after = state_dict_bytes(q)
    ratio = after / before
    quantized = [n for n, m in q.named_modules() if type(m).__module__.startswith("torch.ao.nn.quantized")]
    fc = 2048 * 1000
    # Independent expectation: only fc's 2,048,000 weights go from 4 bytes to 1.
    expected_ratio = (before - 3 * fc) / before
    return ClaimResult(
        "C3", "quantize_dynamic(model, {nn.Linear}, qint8) makes ResNet-50 about 1/4 of its size", "~0.25x",
        f"{after / MB:.1f} MB vs {before / MB:.1f} MB = {ratio:.3f}x; quantized layers: {', '.join(quantized)}",
        verdict(ratio < 0.35), {"ratio": ratio, "quantized_layers": quantized},
        [("ratio", round(ratio, 2), round(expected_ratio, 2))],
    )


def c4_prune_remove_reduces_params(cache: ArtifactCache) -> ClaimResult:
    from torch.nn.utils import prune

    model = build_model("resnet50")
    conv1 = cast(nn.Conv2d, model.conv1)  # ResNet stem; nn.Module.__getattr__ only gives Tensor | Module
    before = params(model)
    prune.l1_unstructured(conv1, name="weight", amount=0.2)
    prune.remove(conv1, "weight")
    after = params(model)
    zeros = int((conv1.weight == 0).sum())
    total = conv1.weight.numel()
    return ClaimResult(
        "C4", "prune.l1_unstructured(conv1, 0.2) + prune.remove actually reduces the parameters",
        "fewer parameters", f"{before:,} -> {after:,} parameters; {zeros}/{total} conv1 weights are zero ({zeros / total:.1%})",
        verdict(after < before), {"before": before, "after": after, "zeros": zeros},
        [("params after", after, TORCHVISION_PARAMS["resnet50"]), ("conv1 zeros", zeros, round(0.2 * 64 * 3 * 7 * 7))],
    )


def c5_stage_table(cache: ArtifactCache) -> ClaimResult:
    model = build_model("resnet50")
    shapes: dict[str, tuple[int, ...]] = {}
    hooks = [getattr(model, name).register_forward_hook(lambda m, i, o, name=name: shapes.__setitem__(name, tuple(o.shape)))
             for name in ("conv1", "layer1", "layer2", "layer3", "layer4", "avgpool")]
    with torch.inference_mode():
        model(torch.zeros(1, 3, 224, 224))
    for h in hooks:
        h.remove()
    blocks = [len(getattr(model, f"layer{i}")) for i in range(1, 5)]
    widths = [getattr(model, f"layer{i}")[0].conv1.out_channels for i in range(1, 5)]
    stated = {"conv1": (64, 112), "layer1": (256, 56), "layer2": (512, 28), "layer3": (1024, 14),
              "layer4": (2048, 7), "avgpool": (2048, 1)}
    ok = all(shapes[k][1] == c and shapes[k][2] == s for k, (c, s) in stated.items())
    ok &= blocks == [3, 4, 6, 3] and widths == [64, 128, 256, 512]
    measured = ", ".join(f"{k} {v[2]}x{v[3]}x{v[1]}" for k, v in shapes.items()) + f"; blocks {blocks}; widths {widths}"
    return ClaimResult("C5", "ResNet-50 stage table (112, 56x3, 28x4, 14x6, 7x3, 1x1; 64->256 ... 512->2048)",
                       "conv1 112; conv2_x 56 3 blocks 64->256; conv3_x 28 4 128->512; conv4_x 14 6 256->1024; conv5_x 7 3 512->2048; pool 1",
                       measured, verdict(ok), {"shapes": shapes, "blocks": blocks},
                       [("blocks", sum(blocks), sum(SPECS["resnet50"].layers))])


# The int8 artifacts C6 measures: ONNX Runtime's always; the edge runtimes' own formats
# (LiteRT flatbuffer for Android, Core ML package for Apple) where the edge extra is installed.
EDGE_INT8 = (("onnxruntime", "static", "static QDQ ONNX"), ("litert", "static", "LiteRT int8 .tflite"),
             ("coreml", "dynamic", "Core ML int8-weight .mlpackage"))


def c6_int8_edge_sizes(cache: ArtifactCache) -> ClaimResult:
    from resnetbench.backends import get_backend
    from resnetbench.matrix import Case

    sizes: dict[str, float] = {}
    not_measured: dict[str, str] = {}
    for backend, compression, label in EDGE_INT8:
        reason = get_backend(backend).unsupported(Case("resnet18", "int8", compression, backend, 1))
        if reason:
            not_measured[label] = reason
            continue
        for arch in ("resnet18", "resnet34"):
            sizes[f"{arch} {label}"] = _int8_artifact_mb(arch, cache, backend, compression)[0]
    ok = all(6 <= mb <= 12 for mb in sizes.values())
    measured = ", ".join(f"{what} {mb:.1f} MB" for what, mb in sizes.items())
    if not_measured:
        measured += "; not measured: " + ", ".join(not_measured)
    return ClaimResult("C6", "ResNet-18/34 in INT8 take about 6-12 MB", "6-12 MB", measured, verdict(ok),
                       {"sizes_mb": sizes, "not_measured": not_measured},
                       [(f"{what} bytes / params", round(mb * MB / TORCHVISION_PARAMS[what.split()[0]], 1), 1.0)
                        for what, mb in sizes.items()])


def c7_fp16_cloud_sizes(cache: ArtifactCache) -> ClaimResult:
    sizes = {arch: state_dict_bytes(build_model(arch).half()) / MB for arch in ("resnet50", "resnet101")}
    ok = all(50 <= mb <= 90 for mb in sizes.values())
    return ClaimResult("C7", "ResNet-50/101 in FP16 take about 50-90 MB", "50-90 MB",
                       ", ".join(f"{a} {mb:.1f} MB" for a, mb in sizes.items()), verdict(ok), sizes,
                       [(f"{a} fp16 file / (2 bytes x params)", round(mb * MB / (2 * TORCHVISION_PARAMS[a]), 2), 1.0)
                        for a, mb in sizes.items()])


class GuideBottleneck(nn.Module):
    """The guide's Bottleneck, as written (its convolutions keep PyTorch's default bias=True)."""

    expansion = 4

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, kernel_size=1)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, kernel_size=3, stride=stride, padding=1)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.conv3 = nn.Conv2d(out_channels, out_channels * self.expansion, kernel_size=1)
        self.bn3 = nn.BatchNorm2d(out_channels * self.expansion)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = None
        if stride != 1 or in_channels != out_channels * self.expansion:
            self.downsample = nn.Sequential(
                nn.Conv2d(in_channels, out_channels * self.expansion, kernel_size=1, stride=stride),
                nn.BatchNorm2d(out_channels * self.expansion),
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        residual = x
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        if self.downsample is not None:
            residual = self.downsample(x)
        out += residual
        return self.relu(out)


def guide_resnet50() -> nn.Module:
    """torchvision's ResNet-50 stem, stages and head, with the guide's block."""
    layers: list[nn.Module] = [nn.Conv2d(3, 64, 7, 2, 3, bias=False), nn.BatchNorm2d(64), nn.ReLU(inplace=True),
                               nn.MaxPool2d(3, 2, 1)]
    inplanes = 64
    for stage, blocks in enumerate((3, 4, 6, 3)):
        planes = 64 * 2**stage
        for b in range(blocks):
            layers.append(GuideBottleneck(inplanes, planes, 2 if stage and b == 0 else 1))
            inplanes = planes * 4
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(2048, 1000)]
    return nn.Sequential(*layers)


def c8_guide_bottleneck(cache: ArtifactCache) -> ClaimResult:
    model = guide_resnet50()
    n = params(model)
    with torch.inference_mode():
        out = model.eval()(torch.zeros(1, 3, 64, 64))
    tv = TORCHVISION_PARAMS["resnet50"]
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d) and m.bias is not None]
    bias_params = sum(m.out_channels for m in convs)
    return ClaimResult("C8", "The guide's Bottleneck built into a ResNet-50 matches torchvision's parameter count",
                       f"{tv:,} (same as torchvision)",
                       f"{n:,} parameters (+{n - tv:,}: its convolutions carry biases that BatchNorm makes redundant)",
                       verdict(n == tv), {"params": n, "torchvision": tv, "output": list(out.shape)},
                       [("extra params = conv biases", n - tv, bias_params)])


def c9_distill_ratio(cache: ArtifactCache) -> ClaimResult:
    teacher, student = build_model("resnet152"), build_model("resnet18")
    t_bytes, s_bytes = state_dict_bytes(teacher), state_dict_bytes(student)
    ratio = t_bytes / s_bytes
    return ClaimResult("C9", "Distilling ResNet-152 into ResNet-18 shrinks the model about 5x", "~5x",
                       f"{t_bytes / MB:.1f} MB -> {s_bytes / MB:.1f} MB = {ratio:.2f}x (files); params {params(teacher) / params(student):.2f}x",
                       verdict(4.5 <= ratio <= 5.5), {"ratio": ratio},
                       [("param ratio", round(params(teacher) / params(student), 2),
                         round(TORCHVISION_PARAMS["resnet152"] / TORCHVISION_PARAMS["resnet18"], 2))])


CLAIMS: dict[str, Callable[[ArtifactCache], ClaimResult]] = {
    "C1": c1_params_and_fp32_sizes,
    "C2": c2_fp16_half_int8_quarter,
    "C3": c3_dynamic_quarter,
    "C4": c4_prune_remove_reduces_params,
    "C5": c5_stage_table,
    "C6": c6_int8_edge_sizes,
    "C7": c7_fp16_cloud_sizes,
    "C8": c8_guide_bottleneck,
    "C9": c9_distill_ratio,
}


def check_all(cache: ArtifactCache, only: list[str] | None = None) -> list[ClaimResult]:
    """Run the claims (all, or those named) and return their results."""
    return [CLAIMS[c](cache) for c in (only or CLAIMS)]
