"""Accuracy references: the outputs a case is judged against, computed once per run and
shared by every case that needs them (the latency reference is ``latency_reference.py``).

fp32 uncompressed cases compare against a float64 golden run of the same model; every
other case (reduced precision, int8, pruned, distilled) against the fp32 eager outputs
of the uncompressed model on the same inputs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from resnetbench import data
from resnetbench.build import base_model
from resnetbench.cache import ArtifactCache
from resnetbench.compress import DEFAULT_COMPRESSION, get_method
from resnetbench.config import Config
from resnetbench.matrix import Case


@dataclass(frozen=True)
class Reference:
    """Inputs, reference logits, and the fp32 uncompressed logits for task-level drops."""

    inputs: data.InputSet
    logits: torch.Tensor
    fp32_logits: torch.Tensor
    kind: str  # "fp64-golden" | "fp32-eager-uncompressed" | "teacher-fp32"


def forward(model: torch.nn.Module, x: torch.Tensor, chunk: int = 64) -> torch.Tensor:
    with torch.inference_mode():
        return torch.cat([model(x[i : i + chunk]) for i in range(0, len(x), chunk)])


def reference_for(config: Config, case: Case, cache: ArtifactCache, memo: dict[Any, Any]) -> Reference:
    """The reference a case is judged against (memoised in ``memo`` for the run)."""
    key_inputs = ("inputs", config.input_size)
    if key_inputs not in memo:
        memo[key_inputs] = data.input_set(config.dataset, config.input_size, config.seed)
    inputs: data.InputSet = memo[key_inputs]
    method = get_method(case.compression)
    by_teacher = method.accuracy_reference == "teacher"
    arch = method.settings_for(case.settings)["teacher"] if by_teacher else case.arch
    key32 = ("fp32", arch)
    if key32 not in memo:
        memo[key32] = forward(base_model(config, arch, cache), inputs.images).float()
    fp32 = memo[key32]
    if by_teacher:
        return Reference(inputs, fp32, fp32, "teacher-fp32")
    if case.dtype == "fp32" and case.compression == DEFAULT_COMPRESSION:
        key64 = ("fp64", arch)
        if key64 not in memo:
            model = base_model(config, arch, cache).double()
            memo[key64] = forward(model, inputs.images.double())
        return Reference(inputs, memo[key64], fp32, "fp64-golden")
    return Reference(inputs, fp32, fp32, "fp32-eager-uncompressed")
