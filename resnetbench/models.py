"""The one model factory: an architecture from the registry, freshly initialised from a seed.

Which weights a case then gets (random, torchvision, a checkpoint, trained on digits)
is ``weights.py``'s job.
"""

from __future__ import annotations

import torch
from torch import nn

from resnetbench.architectures import ARCHITECTURES, register_arch
from resnetbench.registry import RegistryError

__all__ = ["WeightsError", "build_model", "register_arch"]


class WeightsError(Exception):
    """Weights that cannot be obtained; the message says what to do."""


def build_model(arch: str, num_classes: int = 1000, seed: int = 0) -> nn.Module:
    """A freshly initialised model, bit-identical for the same arch and seed in any process."""
    try:
        factory = ARCHITECTURES.get(arch)
    except RegistryError as exc:
        raise WeightsError(str(exc)) from None
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = factory(num_classes=num_classes)
    return model.eval()
