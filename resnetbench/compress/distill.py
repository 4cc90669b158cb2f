"""Knowledge distillation with the guide's loss: KL on softened outputs x T^2 plus cross-entropy.

``loss = alpha * KL(softmax(t/T) || softmax(s/T)) * T^2 + (1 - alpha) * CE(s, y)``.
The case's arch is the student, ``teacher`` another architecture with the same
weights source. On labelled digits the labels are real; on synthetic inputs the
teacher's top-1 stands in for labels (and the case notes it).
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from resnetbench.compress.base import FLOATS, Method, MethodContext

if TYPE_CHECKING:
    import torch
    from torch import nn

    from resnetbench.matrix import Case

DEFAULTS: dict[str, Any] = {"teacher": "resnet50", "temperature": 4.0, "alpha": 0.5, "epochs": 2, "lr": 2e-3}


def distill_loss(student: torch.Tensor, teacher: torch.Tensor, labels: torch.Tensor, T: float, alpha: float) -> torch.Tensor:
    """The guide's loss, with KL's batchmean reduction."""
    import torch.nn.functional as F

    kd = F.kl_div(F.log_softmax(student / T, 1), F.softmax(teacher / T, 1), reduction="batchmean") * T * T
    return alpha * kd + (1 - alpha) * F.cross_entropy(student, labels)


def agreement(a: nn.Module, b: nn.Module, x: torch.Tensor) -> float:
    import torch

    with torch.inference_mode():
        return (a(x).argmax(1) == b(x).argmax(1)).float().mean().item()


def prepare(student: nn.Module, case: Case, ctx: MethodContext) -> tuple[nn.Module, dict[str, Any]]:
    """Train the student against the teacher; report sizes, agreement before/after, time."""
    import torch
    from tqdm import tqdm

    from resnetbench import data
    from resnetbench.models import build_model
    from resnetbench.weights import num_classes_for

    config, settings = ctx.config, ctx.settings
    # The student starts from a fresh initialisation, whatever the matrix's weights are.
    student = build_model(case.arch, num_classes_for(config.weights), config.seed)
    T, alpha = float(settings["temperature"]), float(settings["alpha"])
    teacher = ctx.base_model(settings["teacher"]).eval()
    if config.dataset.name == "digits":
        train = data.digits(config.input_size, "train", config.seed)
        test = data.digits(config.input_size, "test", config.seed)
        x_train, x_test = train.images, test.images
        assert train.labels is not None  # digits() always carries labels
        with torch.inference_mode():
            t_train = teacher(x_train)
        y_train, labels_from = train.labels, "digits labels"
    else:
        x_train = data.synthetic(256, config.input_size, config.seed + 7).images
        x_test = data.synthetic(64, config.input_size, config.seed + 8).images
        with torch.inference_mode():
            t_train = teacher(x_train)
        y_train, labels_from = t_train.argmax(1), "teacher top-1 (no labels on synthetic data)"
    before = agreement(student, teacher, x_test)
    gen = torch.Generator().manual_seed(config.seed)
    opt = torch.optim.AdamW(student.parameters(), lr=float(settings["lr"]))
    epochs = int(settings["epochs"])
    steps = epochs * ((len(x_train) + 63) // 64)
    start = time.perf_counter()
    student.train()
    with tqdm(total=steps, desc=f"distill {settings['teacher']} -> {case.arch}", leave=False) as bar:
        for _ in range(epochs):
            order = torch.randperm(len(x_train), generator=gen)
            for i in range(0, len(order), 64):
                idx = order[i : i + 64]
                loss = distill_loss(student(x_train[idx]), t_train[idx], y_train[idx], T, alpha)
                opt.zero_grad()
                loss.backward()
                opt.step()
                bar.update(1)
    student.eval()
    t_params = sum(p.numel() for p in teacher.parameters())
    s_params = sum(p.numel() for p in student.parameters())
    return student, {
        "teacher": settings["teacher"],
        "teacher_params": t_params,
        "student_params": s_params,
        "size_ratio": t_params / s_params,
        "agreement_before": before,
        "agreement_after": agreement(student, teacher, x_test),
        "train_s": time.perf_counter() - start,
        "steps": steps,
        "labels": labels_from,
        "temperature": T,
        "alpha": alpha,
    }


METHOD = Method(
    "distill",
    FLOATS,
    prepare=prepare,
    defaults=DEFAULTS,
    tolerances={"top1_agreement": 0.5},
    uses_dataset=True,
    accuracy_reference="teacher",
    settings_schema={
        "teacher": {"type": "string", "x-names": "architectures", "description": "the teacher's architecture"},
        "temperature": {"type": "number", "exclusiveMinimum": 0, "maximum": 1000,
                        "description": "softmax temperature of the distillation term"},
        "alpha": {"type": "number", "minimum": 0, "maximum": 1, "description": "weight of the distillation term"},
        "epochs": {"type": "integer", "minimum": 1, "maximum": 1000, "description": "student training epochs"},
        "lr": {"type": "number", "exclusiveMinimum": 0, "maximum": 10, "description": "the student's learning rate"},
    },
)
