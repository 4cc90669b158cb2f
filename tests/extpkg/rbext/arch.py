"""ResNet-10: torchvision's ResNet with one BasicBlock per stage."""

from __future__ import annotations

from torch import nn
from torchvision.models.resnet import BasicBlock, ResNet


def resnet10(num_classes: int = 1000) -> nn.Module:
    return ResNet(BasicBlock, [1, 1, 1, 1], num_classes=num_classes)
