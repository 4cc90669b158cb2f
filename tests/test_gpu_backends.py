"""GPU backends on a machine without a GPU: declared, skipped with a reason, code paths run on the CPU."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torchvision

from resnetbench.backends import get_backend
from resnetbench.backends.gpu import CudaRunner, OrtCudaRunner
from resnetbench.matrix import Case

GPU_BACKENDS = ("cuda", "onnxruntime-cuda", "onnxruntime-tensorrt", "tensorrt")


@pytest.mark.parametrize("name", GPU_BACKENDS)
def test_gpu_backends_skip_with_a_reason_without_cuda(name):
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    reason = get_backend(name).unsupported(Case("resnet18", "fp32", "none", name, 1))
    assert reason and ("CUDA GPU" in reason or "not installed" in reason)


def test_cuda_runner_path_on_cpu():
    model = torchvision.models.resnet18(num_classes=10).eval()
    runner = CudaRunner(model, Case("resnet18", "fp32", "none", "cuda", 2), device="cpu")
    x = torch.randn(2, 3, 32, 32)
    out = runner.to_logits(runner.run(runner.prepare(x)))
    with torch.inference_mode():
        assert torch.allclose(out, model(x), atol=1e-5)


def test_ort_io_binding_path_on_cpu(tmp_path):
    import onnxruntime as ort

    from resnetbench.backends.onnx_export import export_onnx

    model = torchvision.models.resnet18(num_classes=10).eval()
    x = torch.randn(2, 3, 32, 32)
    export_onnx(model, x, tmp_path / "m.onnx")
    session = ort.InferenceSession(str(tmp_path / "m.onnx"), providers=["CPUExecutionProvider"])
    runner = OrtCudaRunner(session, np.float32, device="cpu")
    out = runner.to_logits(runner.run(runner.prepare(x)))
    with torch.inference_mode():
        assert torch.allclose(out, model(x), atol=1e-4)
