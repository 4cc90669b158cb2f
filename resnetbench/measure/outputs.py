"""A case's logits on the accuracy inputs, run in chunks of its batch and kept in the cache.

Shared by the accuracy measurement (``accuracy_case.py``) and the check of the timed calls'
outputs (``latency_case.py``).
"""

from __future__ import annotations

import hashlib
from typing import Any

import torch


def run_batches(built: Any, images: torch.Tensor) -> torch.Tensor:
    """Logits for all images, in chunks of the case's batch (the last one padded)."""
    batch = built.case.batch
    outs = []
    for i in range(0, len(images), batch):
        chunk = images[i : i + batch]
        n = len(chunk)
        if n < batch:
            chunk = torch.cat([chunk, chunk[:1].expand(batch - n, *chunk.shape[1:])])
        out = built.runner.to_logits(built.runner.run(built.runner.prepare(chunk)))
        outs.append(out[:n])
    return torch.cat(outs)


def case_outputs(built: Any, inputs: Any, state: Any) -> tuple[torch.Tensor, bool]:
    """The case's logits on the accuracy inputs, and whether they came from the cache.

    They are deterministic in what the key names: the artifact (its cache entry, whose key
    holds the libraries, the backend's code and every setting), the recipe it runs with, the
    runner's class and code (a wrapped or patched runner is another key), the input tensor,
    the threads and the machine. A warm run reads them; ``--fresh-outputs`` runs the artifact
    regardless.
    """
    from resnetbench.build import code_version
    from resnetbench.measure.accuracy_reference import inputs_digest

    if state.fresh_outputs:
        return run_batches(built, inputs.images), False
    runner = type(built.runner)
    desc = {
        "artifact": built.entry.name,
        "runner": f"{runner.__module__}.{runner.__qualname__}",
        "code": code_version(runner.__module__, __name__),
        "methods": methods_digest(built.runner),
        # the recipe the artifact runs with (tuning.py): another recipe may compute other bits
        "recipe": built.tuning.get("recipe"),
        "inputs_sha256": inputs_digest(inputs, state.memo),
        "threads": state.threads,
        "machine": (state.environment.get("fingerprint") or {}).get("hash"),
    }

    def build(out: Any) -> dict[str, Any]:
        torch.save(run_batches(built, inputs.images), out / "outputs.pt")
        return {"files": ["outputs.pt"]}

    entry, meta = state.cache.get_or_build("outputs", built.case.id, desc, build)
    logits = torch.load(entry / "outputs.pt", weights_only=True)  # tensors only, never code
    return logits, bool(meta["cached"])


def methods_digest(runner: Any) -> str:
    """A hash of the bytecode the runner's prepare/run/to_logits execute: a method patched at
    run time (a conftest, a plugin) is another key, not a cache hit."""
    digest = hashlib.sha256()
    for name in ("prepare", "run", "to_logits"):
        fn = getattr(runner, name)
        fn = getattr(fn, "__func__", fn)
        code = getattr(fn, "__code__", None)
        digest.update(f"{name}:{getattr(fn, '__qualname__', type(fn).__name__)}".encode())
        if code is not None:
            digest.update(code.co_code + repr(code.co_consts).encode())
    return digest.hexdigest()[:16]
