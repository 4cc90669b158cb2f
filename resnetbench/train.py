"""Training on scikit-learn's offline digits, so task accuracy means something.

Reproducible from the seed (same seed, same weights on the same library versions);
``weights.trained_model`` caches the result on disk like any artifact.
"""

from __future__ import annotations

import time
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from resnetbench import data
from resnetbench.config import TRAIN_DEFAULTS
from resnetbench.models import build_model

DEFAULT_SIZE = 32


def train_digits(
    arch: str,
    epochs: int = TRAIN_DEFAULTS["epochs"],
    seed: int = 0,
    size: int = DEFAULT_SIZE,
    batch_size: int = 64,
    lr: float = 2e-3,
    progress: bool = True,
) -> tuple[nn.Module, dict[str, Any]]:
    """Train ``arch`` (10 classes) on the digits train split; report test accuracy and time."""
    train = data.digits(size, "train", seed)
    test = data.digits(size, "test", seed)
    assert train.labels is not None  # digits() always carries labels
    model = build_model(arch, num_classes=10, seed=seed)
    gen = torch.Generator().manual_seed(seed)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-4)
        steps = epochs * ((len(train.labels) + batch_size - 1) // batch_size)
        sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps)
        start = time.perf_counter()
        model.train()
        bar = tqdm(total=steps, desc=f"train {arch} on digits", disable=not progress, leave=False)
        for _ in range(epochs):
            order = torch.randperm(len(train.labels), generator=gen)
            for i in range(0, len(order), batch_size):
                idx = order[i : i + batch_size]
                loss = F.cross_entropy(model(train.images[idx]), train.labels[idx])
                opt.zero_grad()
                loss.backward()
                opt.step()
                sched.step()
                bar.update(1)
                bar.set_postfix(loss=f"{loss.item():.3f}")
        bar.close()
        seconds = time.perf_counter() - start
    model.eval()
    with torch.inference_mode():
        top1 = (model(test.images).argmax(1) == test.labels).float().mean().item()
    return model, {"epochs": epochs, "seed": seed, "size": size, "train_s": seconds, "test_top1": top1}
