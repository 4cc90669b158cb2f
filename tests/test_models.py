"""The model factory keeps the first model it initialises and hands out copies."""

from __future__ import annotations

import torch
from torch import nn

from resnetbench.architectures import ARCHITECTURES
from resnetbench.models import build_model, register_arch


def _same(a: nn.Module, b: nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def test_copies_are_identical_and_independent() -> None:
    a, b = build_model("resnet18"), build_model("resnet18")
    assert a is not b and _same(a, b)
    with torch.no_grad():
        a.fc.weight.zero_()  # a caller changing its copy changes nobody else's
    assert not _same(a, build_model("resnet18"))
    assert _same(b, build_model("resnet18"))


def test_same_model_as_a_fresh_initialisation() -> None:
    torch.manual_seed(0)
    fresh = ARCHITECTURES.get("resnet18")(num_classes=10).eval()
    assert _same(build_model("resnet18", num_classes=10, seed=0), fresh)
    assert not _same(build_model("resnet18", num_classes=10, seed=1), fresh)


def test_re_registering_a_name_builds_the_new_architecture() -> None:
    name = "memo-test-net"
    register_arch(name)(lambda num_classes=1000: nn.Linear(4, num_classes))
    first = build_model(name, num_classes=3)
    register_arch(name)(lambda num_classes=1000: nn.Linear(8, num_classes))
    try:
        assert first.in_features == 4 and build_model(name, num_classes=3).in_features == 8
    finally:
        ARCHITECTURES.unregister(name)
