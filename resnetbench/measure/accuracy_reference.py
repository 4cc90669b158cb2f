"""Accuracy references: the outputs a case is judged against, computed once per run and
shared by every case that needs them (the latency reference is ``latency_reference.py``).

fp32 uncompressed cases compare against a float64 golden run of the same model; every
other case (reduced precision, int8, pruned, distilled) against the fp32 eager outputs
of the uncompressed model on the same inputs.

Both are deterministic, and the float64 run of a deep model costs more than timing it:
they are kept in the artifact cache (``references/``) keyed like artifacts, plus a hash of
the very input tensor, so a warm run reads them instead of recomputing them.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from resnetbench import data
from resnetbench.build import base_description, base_model, code_version
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


def accuracy_inputs(config: Config, memo: dict[Any, Any]) -> data.InputSet:
    """The images every case's accuracy is measured on (memoised in ``memo`` for the run)."""
    key = ("inputs", config.input_size)
    if key not in memo:
        memo[key] = data.input_set(config.dataset, config.input_size, config.seed)
    inputs: data.InputSet = memo[key]
    return inputs


def reference_for(config: Config, case: Case, cache: ArtifactCache, memo: dict[Any, Any]) -> Reference:
    """The reference a case is judged against (memoised in ``memo`` for the run)."""
    inputs = accuracy_inputs(config, memo)
    method = get_method(case.compression)
    by_teacher = method.accuracy_reference == "teacher"
    arch = method.settings_for(case.settings)["teacher"] if by_teacher else case.arch
    key32 = ("fp32", arch)
    if key32 not in memo:
        memo[key32] = _cached_logits(config, arch, "fp32", inputs, cache, memo,
                                     lambda: forward(base_model(config, arch, cache), inputs.images).float())
    fp32 = memo[key32]
    if by_teacher:
        return Reference(inputs, fp32, fp32, "teacher-fp32")
    if case.dtype == "fp32" and case.compression == DEFAULT_COMPRESSION:
        key64 = ("fp64", arch)
        if key64 not in memo:
            memo[key64] = _cached_logits(
                config, arch, "fp64", inputs, cache, memo,
                lambda: forward(base_model(config, arch, cache).double(), inputs.images.double()))
        return Reference(inputs, memo[key64], fp32, "fp64-golden")
    return Reference(inputs, fp32, fp32, "fp32-eager-uncompressed")


def inputs_digest(inputs: data.InputSet, memo: dict[Any, Any]) -> str:
    """SHA-256 of the input tensor's bytes (memoised per tensor in ``memo``)."""
    key = ("inputs-sha256", id(inputs.images))
    if key not in memo:
        memo[key] = hashlib.sha256(inputs.images.contiguous().numpy().tobytes()).hexdigest()
    return memo[key]


def _cached_logits(config: Config, arch: str, kind: str, inputs: data.InputSet, cache: ArtifactCache,
                   memo: dict[Any, Any], compute: Callable[[], torch.Tensor]) -> torch.Tensor:
    """Reference logits from the cache, computed and stored on a miss."""
    desc = {
        **base_description(config, arch),
        "kind": kind,
        # the inputs themselves, not how they were named: a changed pipeline or seed is a new entry
        "inputs_sha256": inputs_digest(inputs, memo),  # the suite's outputs cache hashes the same tensor
        "code": code_version("resnetbench.models", "resnetbench.weights", __name__),
    }

    def build(out: Path) -> dict[str, Any]:
        torch.save(compute(), out / "logits.pt")
        return {"files": ["logits.pt"]}

    entry, _ = cache.get_or_build("references", f"{arch}-{kind}", desc, build)
    # tensors only: a cache entry someone else wrote cannot run code when it is read
    logits = torch.load(entry / "logits.pt", weights_only=True)
    if not isinstance(logits, torch.Tensor) or logits.shape[0] != inputs.images.shape[0]:
        raise ValueError(f"{entry / 'logits.pt'}: not {kind} logits for {inputs.images.shape[0]} inputs; "
                         "clear the cache (resnetbench cache clear)")
    return logits
