"""Device-only backends: PyTorch on CUDA, ONNX Runtime's CUDA and TensorRT providers, torch-tensorrt.

Declared with their capabilities everywhere; they run only where a CUDA device is
available (skipped with that reason otherwise). Timed regions end with a device
synchronisation, and inputs are moved to the device once in ``prepare``, so latency
measures the kernels, not the copies.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from resnetbench.backends.base import DEFAULT_RECIPE, BuildContext, Exported, Recipe, Timer
from resnetbench.backends.eager import torch_input
from resnetbench.backends.onnxruntime import OnnxRuntimeBackend, OrtRunner, session_options
from resnetbench.backends.torch_module import TorchModuleBackend
from resnetbench.cache import verified_copy
from resnetbench.matrix import Case


class CudaRunner:
    """Runs a module on the GPU; ``run`` returns after the device has finished."""

    def __init__(self, model: nn.Module, case: Case, device: str = "cuda") -> None:
        self.model = model.to(device)
        self.case = case
        self.device = device

    def prepare(self, x: torch.Tensor) -> torch.Tensor:
        return torch_input(x, self.case).to(self.device)

    def run(self, native: torch.Tensor) -> torch.Tensor:
        with torch.inference_mode():
            out = self.model(native)
        if torch.device(self.device).type == "cuda":
            torch.cuda.synchronize(self.device)  # the timed region ends when the kernels have
        return out

    def to_logits(self, out: torch.Tensor) -> torch.Tensor:
        return out.float().cpu()


class CudaBackend(TorchModuleBackend):
    loads_into_module = True
    name = "cuda"
    device = "cuda"
    dtypes = frozenset({"fp32", "fp16", "bf16"})
    artifact_kind = "state_dict (torch.save)"

    def export(self, model: nn.Module, case: Case, out: Path, ctx: BuildContext) -> Exported:
        with Timer() as t:
            torch.save(model.state_dict(), out / "model.pt")
        return Exported(["model.pt"], t.seconds)

    def load(self, model: nn.Module, case: Case, entry: Path, meta: dict[str, Any], ctx: BuildContext) -> CudaRunner:
        model.load_state_dict(torch.load(entry / "model.pt", map_location="cpu", weights_only=True))
        torch.backends.cudnn.benchmark = True
        return CudaRunner(model.eval(), case)


class OrtCudaRunner(OrtRunner):
    """ONNX Runtime with IO binding: the input is copied to the device once, in ``prepare``."""

    def __init__(self, session: Any, input_dtype: type, device: str = "cuda") -> None:
        super().__init__(session, input_dtype)
        self.device = device

    def prepare(self, x: torch.Tensor) -> Any:
        import onnxruntime as ort

        host = super().prepare(x)[self.input_name]
        binding = self.session.io_binding()
        binding.bind_ortvalue_input(self.input_name, ort.OrtValue.ortvalue_from_numpy(host, self.device, 0))
        binding.bind_output(self.session.get_outputs()[0].name, self.device)
        binding.keep_alive = host  # the OrtValue may share host memory on CPU
        return binding

    def run(self, binding: Any) -> Any:
        self.session.run_with_iobinding(binding)
        binding.synchronize_outputs()  # the timed region ends when the device has finished
        return binding

    def to_logits(self, binding: Any) -> torch.Tensor:
        return torch.from_numpy(np.asarray(binding.copy_outputs_to_cpu()[0], dtype=np.float32))


class OrtCudaBackend(OnnxRuntimeBackend):
    name = "onnxruntime-cuda"
    device = "cuda"
    dtypes = frozenset({"fp32", "fp16", "int8"})
    providers: tuple[str, ...] = ("CUDAExecutionProvider", "CPUExecutionProvider")

    def unsupported(self, case: Case) -> str | None:
        reason = super().unsupported(case)
        if reason is None:
            import onnxruntime as ort

            if self.providers[0] not in ort.get_available_providers():
                return f"{self.name}: this onnxruntime build lacks {self.providers[0]} (install onnxruntime-gpu)"
        return reason

    def extra_name(self) -> str:
        return "gpu"

    def recipes(self, case: Case) -> tuple[Recipe, ...]:
        return (DEFAULT_RECIPE,)  # always device-bound IOBinding (OrtCudaRunner); the CPU recipes do not apply

    def load(self, model: nn.Module, case: Case, entry: Path, meta: dict[str, Any], ctx: BuildContext) -> OrtRunner:
        import onnxruntime as ort

        session = ort.InferenceSession(str(entry / "model.onnx"), session_options(ctx.threads), providers=list(self.providers))
        if session.get_providers()[0] != self.providers[0]:
            raise RuntimeError(f"{self.name}: ONNX Runtime fell back to {session.get_providers()[0]}")
        meta.setdefault("runtime", {})["providers"] = session.get_providers()
        return OrtCudaRunner(session, np.float16 if case.dtype == "fp16" else np.float32)


class OrtTensorRTBackend(OrtCudaBackend):
    name = "onnxruntime-tensorrt"
    providers = ("TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider")
    fixed_batch = True  # TensorRT builds its engine for one input shape


class TorchTensorRTBackend(CudaBackend):
    name = "tensorrt"
    requires = ("torch_tensorrt",)
    dtypes = frozenset({"fp32", "fp16"})
    quantization = frozenset()  # TensorRT's int8 needs its own calibrator, not wired here
    fixed_batch = True  # the engine is built for one input shape
    loads_into_module = False  # the artifact is a TorchScript module with the engine inside
    artifact_kind = "TorchScript module with embedded TensorRT engine"

    def extra_name(self) -> str:
        return "gpu"

    def export(self, model: nn.Module, case: Case, out: Path, ctx: BuildContext) -> Exported:
        import torch_tensorrt

        dtype = torch.float16 if case.dtype == "fp16" else torch.float32
        sample = torch.randn(case.batch, 3, ctx.input_size, ctx.input_size, device="cuda", dtype=dtype)
        with Timer() as t:
            trt = torch_tensorrt.compile(model.cuda().to(dtype).eval(), ir="ts", inputs=[sample], enabled_precisions={dtype})
            torch.jit.save(trt, str(out / "model.ts"))
        return Exported(["model.ts"], t.seconds)

    def load(self, model: nn.Module, case: Case, entry: Path, meta: dict[str, Any], ctx: BuildContext) -> CudaRunner:
        with verified_copy(entry, "model.ts", meta) as path:  # TorchScript + engine: code, checked (cache.py)
            module = torch.jit.load(str(path), map_location="cuda")
        return CudaRunner(module, case)
