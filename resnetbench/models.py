"""The one model factory: an architecture from the registry, freshly initialised from a seed.

Which weights a case then gets (random, torchvision, a checkpoint, trained on digits)
is ``weights.py``'s job.
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from resnetbench.architectures import ARCHITECTURES, register_arch
from resnetbench.registry import RegistryError

__all__ = ["WeightsError", "build_model", "register_arch"]


class WeightsError(Exception):
    """Weights that cannot be obtained; the message says what to do."""


def build_model(arch: str, num_classes: int = 1000, seed: int = 0) -> nn.Module:
    """A freshly initialised model, bit-identical for the same arch and seed in any process.

    The caller gets its own copy to change. Initialising ResNet-152 takes a second and the
    cases, claims and references ask for the same few models again and again, so the first
    one made in this process is kept (keyed by the factory too: re-registering a name makes
    a new model) and copied, which takes a tenth of that.
    """
    try:
        factory = ARCHITECTURES.get(arch)
    except RegistryError as exc:
        raise WeightsError(str(exc)) from None
    key = (arch, factory, num_classes, seed)
    if key not in _INITIALISED:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            _INITIALISED[key] = factory(num_classes=num_classes).eval()
    return copy.deepcopy(_INITIALISED[key])


_INITIALISED: dict[tuple[str, object, int, int], nn.Module] = {}
