"""Per-dtype compute roofs for this machine: the ceiling a latency case's GFLOP/s is divided by.

The suite used to divide every case's GFLOP/s by one 2048^3 fp32 ``torch.mm``. A matmul is
not a ceiling: tuned backends beat it (OpenVINO's fp32 ResNet-50 showed "142% of peak"), and
int8 and bf16 cases run on wider instructions than fp32 FMAs (int8 cases showed 274-420%). A
roof must never be below anything the machine does, so each dtype's roof here is the larger of

- the theoretical peak: cores x FLOPs per cycle per core (from the CPU's flags and a small
  microarchitecture table) x the measured sustained clock, and
- the best throughput any installed library reaches at that arithmetic (torch, OpenVINO,
  ONNX Runtime kernels timed here).

If a measured kernel beats the theoretical figure the per-cycle table underestimates this CPU,
and the kernel becomes the roof; the ``basis`` sentence says which of the two applies.

``python -m resnetbench.roof [--threads N]`` prints the table.
"""

from __future__ import annotations

import argparse
import copy
import ctypes
import functools
import json
import logging
import math
import mmap
import os
import platform
import struct
import sys
import time
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

log = logging.getLogger(__name__)

DTYPES = ("fp32", "fp16", "bf16", "int8")
CPUINFO = "/proc/cpuinfo"

# The measured kernels' shapes: a square matmul large enough to be compute bound, and a
# ResNet stage-2 3x3 convolution (the bulk of a ResNet's FLOPs), batch 1 as in the latency cases.
MATMUL_N = 2048
CONV_CHANNELS = 256
CONV_HW = 56
MATMUL_FLOPS = 2 * MATMUL_N**3
CONV_FLOPS = 2 * CONV_CHANNELS * CONV_CHANNELS * 9 * CONV_HW * CONV_HW

# Intel's published AMX throughput per core per cycle (Sapphire Rapids: 1024 bf16 FLOPs,
# 2048 int8 ops); no vector-unit figure comes close, so it is the roof where the flags show AMX.
AMX_BF16_FLOPS_PER_CYCLE = 1024.0
AMX_INT8_OPS_PER_CYCLE = 2048.0

# The clock loop: CLOCK_ADDS dependent ``add rdx, rcx`` (rcx = 1) per iteration. A register-
# register add has a latency of one cycle on every x86-64 core, so a chain of them runs at
# exactly one per cycle whatever the core's width, and one iteration costs CLOCK_ADDS cycles (the
# loop counter is a separate, parallel dependency chain that hides under the adds).
# ``add rdx, 1`` (add-immediate) was used first and dropped: recent Intel cores (Golden Cove /
# Sapphire Rapids) fold chains of add-immediate in the renamer, so more than one retires per
# cycle, and the probe read 7.57 to 17 GHz on a Sapphire Rapids Xeon.
# As a cross-check the same loop runs a chain of ``imul rdx, rdx`` (3 cycles each on Intel
# since Nehalem and on AMD Zen); if the two imply clocks more than CLOCK_AGREEMENT apart,
# neither is trusted and the roof falls back to /proc/cpuinfo.
ADD_RDX_RCX = bytes.fromhex("4801ca")
IMUL_RDX_RDX = bytes.fromhex("480fafd2")
IMUL_CYCLES = 3
CLOCK_AGREEMENT = 0.25
CLOCK_ADDS = 100
CLOCK_RUN_S = 0.1
CLOCK_RUNS = 5


# --------------------------------------------------------------------------- CPU features


def parse_cpuinfo(text: str) -> dict[str, Any]:
    """The fields a roof needs from ``/proc/cpuinfo`` text (the first processor's block, plus
    the count of distinct physical cores over all blocks).

    Physical cores, not logical CPUs: SMT siblings share one core's FMA units, so counting them
    would double the theoretical peak without adding any arithmetic.
    """
    blocks = [b for b in text.split("\n\n") if b.strip()]
    parsed: list[dict[str, str]] = []
    for block in blocks:
        fields: dict[str, str] = {}
        for line in block.splitlines():
            key, sep, value = line.partition(":")
            if sep:
                fields.setdefault(key.strip(), value.strip())
        parsed.append(fields)
    first = parsed[0] if parsed else {}
    # x86 lists ISA extensions under "flags"; ARM under "Features".
    flags = set((first.get("flags") or first.get("Features") or "").split())
    cores = {(b["physical id"], b["core id"]) for b in parsed if "physical id" in b and "core id" in b}
    if cores:
        physical = len(cores)
    elif "cpu cores" in first:
        sockets = {b.get("physical id", "0") for b in parsed}
        physical = (_int(first["cpu cores"]) or 1) * max(1, len(sockets))
    else:
        physical = sum(1 for b in parsed if "processor" in b) or (os.cpu_count() or 1)
    mhz = first.get("cpu MHz")
    return {
        "vendor": first.get("vendor_id", first.get("CPU implementer", "")),
        "family": _int(first.get("cpu family")),
        "model": _int(first.get("model")),
        "model_name": first.get("model name", ""),
        "flags": flags,
        "physical_cores": max(1, physical),
        "mhz": _float(mhz),
        "source": CPUINFO,
    }


def cpu_features() -> dict[str, Any]:
    """This CPU's vendor, family, model, name, flags and physical cores.

    Off Linux (no ``/proc/cpuinfo``) the flags are empty, so ``flops_per_cycle`` falls back to
    its 128-bit upper bound, and the name is ``platform.processor()``.
    """
    try:
        with open(CPUINFO, encoding="utf-8", errors="replace") as f:
            features = parse_cpuinfo(f.read())
        if features["flags"] or features["model_name"]:
            return features
    except OSError:
        pass
    return {
        "vendor": "",
        "family": None,
        "model": None,
        "model_name": platform.processor() or platform.machine(),
        "flags": set(),
        "physical_cores": os.cpu_count() or 1,
        "mhz": None,
        "source": "platform",
    }


def _int(value: str | None) -> int | None:
    try:
        return int(value, 0) if value is not None else None
    except ValueError:
        return None


def _float(value: str | None) -> float | None:
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


# --------------------------------------------------------------------------- clock


def clock_loop_code(adds: int = CLOCK_ADDS, instruction: bytes = ADD_RDX_RCX) -> bytes:
    """x86-64 System V machine code for ``void loop(uint64_t iterations)``.

    ::

        mov  rax, rdi          48 89 f8
        mov  ecx, 1            b9 01 00 00 00   (zero-extends: rcx = 1)
      top:
        add  rdx, rcx          48 01 ca         (x adds, one dependent chain)
        dec  rax               48 ff c8
        jnz  top               0f 85 <rel32>    rel32 counts from the end of the jnz
        ret                    c3

    ``instruction=IMUL_RDX_RDX`` puts ``imul rdx, rdx`` (48 0f af d2) in place of the adds.
    rax, rcx and rdx are caller-saved scratch registers, so nothing needs saving.
    """
    loop = instruction * adds + bytes.fromhex("48ffc8")
    jnz_length = 6
    rel32 = -(len(loop) + jnz_length)  # back to ``top`` from the byte after the jnz
    return bytes.fromhex("4889f8" "b901000000") + loop + b"\x0f\x85" + struct.pack("<i", rel32) + b"\xc3"


def _executable_buffer(code: bytes) -> mmap.mmap:
    """An anonymous read-write-execute mapping holding ``code``.

    Raises OSError where the system refuses executable anonymous memory (SELinux ``execmem``,
    PaX / W^X policies); the caller then gives up measuring.
    """
    size = max(mmap.PAGESIZE, -(-len(code) // mmap.PAGESIZE) * mmap.PAGESIZE)
    buffer = mmap.mmap(-1, size, prot=mmap.PROT_READ | mmap.PROT_WRITE | mmap.PROT_EXEC)
    buffer.write(code)
    return buffer


def _can_run_x86_64_code() -> bool:
    """x86-64 Linux with a 64-bit interpreter: the only place the loop's calling convention holds."""
    return (
        platform.system() == "Linux"
        and platform.machine().lower() in ("x86_64", "amd64")
        and sys.maxsize > 2**32
    )


def measure_clock_ghz() -> dict[str, Any] | None:
    """The sustained core clock, measured: cycles of a dependent register-add chain / seconds.

    Frequency in ``/proc/cpuinfo`` is the nominal (or TSC) rate; the core boosts above it, and a
    roof computed from it would be low. This runs CLOCK_ADDS dependent adds per iteration for
    about CLOCK_RUN_S seconds, best of CLOCK_RUNS runs after a warm-up, one thread, then the
    same with a dependent imul chain as a cross-check.

    A single thread running integer adds can clock higher than all cores running AVX-512 FMAs,
    so this can overstate the clock a vector kernel sees: that errs on the side of a higher
    roof, which is the side a roof must err on.

    Returns ``{"ghz", "method"}``, or None off x86-64 Linux, where executable memory is refused,
    where the result is implausible (e.g. the thread was descheduled throughout), or where the
    add and imul chains disagree by more than CLOCK_AGREEMENT.
    """
    if not _can_run_x86_64_code():
        return None
    adds = _time_chain(ADD_RDX_RCX)
    imuls = _time_chain(IMUL_RDX_RDX) if adds is not None else None
    if adds is None or imuls is None:
        return None
    (seconds, iterations), (imul_seconds, imul_iterations) = adds, imuls
    ghz = iterations * CLOCK_ADDS / seconds / 1e9
    imul_ghz = imul_iterations * CLOCK_ADDS * IMUL_CYCLES / imul_seconds / 1e9
    if not 0.2 <= ghz <= 10.0:
        log.debug("clock loop: implausible %.3f GHz, ignored", ghz)
        return None
    if max(ghz, imul_ghz) / min(ghz, imul_ghz) > 1 + CLOCK_AGREEMENT:
        log.debug("clock loop: add chain %.3f GHz, imul chain %.3f GHz disagree, ignored", ghz, imul_ghz)
        return None
    return {
        "ghz": ghz,
        "method": (
            f"a chain of {CLOCK_ADDS} dependent register adds (add rdx, rcx; 1 cycle each) per "
            f"loop iteration, best of {CLOCK_RUNS} runs of {seconds * 1e3:.0f} ms on one thread; "
            f"a dependent imul chain ({IMUL_CYCLES} cycles each) read {imul_ghz:.2f} GHz"
        ),
    }


def _time_chain(instruction: bytes) -> tuple[float, int] | None:
    """(best seconds, iterations) of ``clock_loop_code(CLOCK_ADDS, instruction)``.

    None where the system refuses executable memory.
    """
    try:
        buffer = _executable_buffer(clock_loop_code(CLOCK_ADDS, instruction))
    except (OSError, ValueError) as exc:
        log.debug("clock loop: executable mapping refused: %s", exc)
        return None
    try:
        anchor = ctypes.c_char.from_buffer(buffer)
        try:
            loop = ctypes.CFUNCTYPE(None, ctypes.c_uint64)(ctypes.addressof(anchor))
            timing = _time_clock_loop(loop)
            del loop
        finally:
            del anchor  # the buffer cannot close while a ctypes object exports it
    finally:
        buffer.close()
    return timing


def _time_clock_loop(loop: Callable[[int], None]) -> tuple[float, int]:
    """(best seconds, iterations): iterations sized to CLOCK_RUN_S from a short probe."""
    probe, elapsed = 10_000, 0.0
    while elapsed < CLOCK_RUN_S / 10 and probe < 10**9:  # long enough to size the runs well
        probe *= 4
        start = time.perf_counter()
        loop(probe)
        elapsed = time.perf_counter() - start
    iterations = max(1, min(10**9, int(probe * CLOCK_RUN_S / max(elapsed, 1e-7))))
    loop(iterations)  # warm-up: the core ramps its clock up
    best = math.inf
    for _ in range(CLOCK_RUNS):
        start = time.perf_counter()
        loop(iterations)
        best = min(best, time.perf_counter() - start)
    return best, iterations


# --------------------------------------------------------------------------- per cycle


def _vector_bits(flags: set[str]) -> int:
    if "avx512f" in flags:
        return 512
    if flags & {"avx2", "fma", "avx"}:
        return 256
    return 128


def _fma_bits_per_cycle(features: dict[str, Any]) -> tuple[int, str]:
    """FMA bits retired per cycle per core, and which table row says so.

    Never more than two vectors of the widest width the flags expose: software can only issue
    the instructions the flags show, whatever the silicon has.
    """
    flags = features.get("flags") or set()
    width = _vector_bits(flags)
    vendor = features.get("vendor") or ""
    family = features.get("family")
    if vendor == "AuthenticAMD" and family == 0x19:
        bits, why = 512, "AMD family 0x19 (Zen 3/Zen 4): two 256-bit FMA pipes, AVX-512 runs as 2 x 256 bits"
    elif vendor == "AuthenticAMD" and family == 0x1A:
        bits, why = 1024, "AMD family 0x1A (Zen 5): two 512-bit FMA pipes"
    elif vendor == "GenuineIntel" and "avx512f" in flags:
        bits, why = 1024, "Intel with AVX-512: two 512-bit FMA units (Xeon Scalable with two FMA units)"
    elif vendor == "GenuineIntel":
        bits, why = 2 * min(256, width), f"Intel without AVX-512: two {min(256, width)}-bit FMA ports"
    else:
        return 2 * width, (
            f"unknown microarchitecture ({vendor or 'no vendor'}, family {family}): "
            f"assumed two {width}-bit FMA pipes, an upper bound"
        )
    if bits > 2 * width:
        bits, why = 2 * width, f"{why}, capped at two {width}-bit vectors (the widest the flags expose)"
    return bits, why


def flops_per_cycle(features: dict[str, Any], dtype: str) -> tuple[float, str]:
    """FLOPs (int8: ops) per cycle per core at ``dtype``, and a short explanation.

    fp32 is the FMA width in fp32 lanes x 2 (an FMA is a multiply and an add). The other dtypes
    scale fp32 by what their instructions do per fp32 lane:

    - bf16: x2 with AVX512_BF16 (``vdpbf16ps``: two bf16 MACs per fp32 lane); AMX-BF16 tiles
      reach AMX_BF16_FLOPS_PER_CYCLE; with neither, bf16 models compute in fp32.
    - fp16: x2 with AVX512_FP16; otherwise there is no fp16 arithmetic and backends compute
      fp16 models in fp32, so fp32's figure.
    - int8: x4 with VNNI (``vpdpbusd``: four u8 x s8 MACs per 32-bit lane); AMX-INT8 tiles reach
      AMX_INT8_OPS_PER_CYCLE; without VNNI x2 (``pmaddubsw`` + ``pmaddwd``), an upper estimate.
    """
    if dtype not in DTYPES:
        raise ValueError(f"unknown dtype {dtype!r}; expected one of {DTYPES}")
    flags = features.get("flags") or set()
    bits, why = _fma_bits_per_cycle(features)
    fp32 = bits / 32 * 2
    base = f"{why}: {bits} FMA bits/cycle = {fp32:g} fp32 FLOPs/cycle"
    if dtype == "fp32":
        return fp32, base
    if dtype == "fp16":
        if "avx512_fp16" in flags:
            return fp32 * 2, f"{base}; x2 with AVX512-FP16 (fp16 lanes are half as wide)"
        return fp32, f"{base}; no fp16 arithmetic (no AVX512-FP16): fp16 models compute in fp32"
    if dtype == "bf16":
        value, note = fp32, "no bf16 instruction: bf16 models compute in fp32"
        if "avx512_bf16" in flags:
            value, note = fp32 * 2, "x2 with AVX512-BF16 (vdpbf16ps: two bf16 MACs per fp32 lane)"
        if "amx_bf16" in flags and AMX_BF16_FLOPS_PER_CYCLE > value:
            value, note = AMX_BF16_FLOPS_PER_CYCLE, f"AMX-BF16 tiles: {AMX_BF16_FLOPS_PER_CYCLE:g} bf16 FLOPs/cycle/core"
        return value, f"{base}; {note}"
    value, note = fp32 * 2, "x2 without VNNI (pmaddubsw path), an upper estimate"
    if flags & {"avx512_vnni", "avx_vnni"}:
        value, note = fp32 * 4, "x4 with VNNI (vpdpbusd: four u8*s8 MACs per 32-bit lane)"
    if "amx_int8" in flags and AMX_INT8_OPS_PER_CYCLE > value:
        value, note = AMX_INT8_OPS_PER_CYCLE, f"AMX-INT8 tiles: {AMX_INT8_OPS_PER_CYCLE:g} int8 ops/cycle/core"
    return value, f"{base}; {note}"


# --------------------------------------------------------------------------- measured kernels


@dataclass(frozen=True)
class KernelSpec:
    """One kernel to time: ``setup()`` builds the inputs (untimed) and returns the timed call."""

    library: str
    kernel: str
    flops: int
    setup: Callable[[], Callable[[], Any]]


KERNEL_BUDGET_S = 0.3
KERNEL_ROUNDS = 5


def _best_seconds(call: Callable[[], Any], budget_s: float = KERNEL_BUDGET_S, rounds: int = KERNEL_ROUNDS) -> float:
    """Best of up to ``rounds`` timed calls after a warm-up call; fewer (at least 2) when one call
    is so slow that ``rounds`` would blow the budget. Best, not median: a roof wants the fastest
    the machine can go, and interference only ever makes a call slower."""
    start = time.perf_counter()
    call()
    first = time.perf_counter() - start
    n = max(2, min(rounds, int(budget_s / max(first, 1e-9))))
    best = math.inf
    for _ in range(n):
        start = time.perf_counter()
        call()
        best = min(best, time.perf_counter() - start)
    return best


@contextmanager
def _torch_threads(threads: int) -> Iterator[None]:
    """torch's intra-op thread count set to ``threads`` for the block, the old value restored."""
    import torch

    old = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(old)


def _torch_specs(dtype: str) -> list[KernelSpec]:
    def mm(torch_dtype_name: str) -> Callable[[], Callable[[], Any]]:
        def setup() -> Callable[[], Any]:
            import torch

            torch_dtype = getattr(torch, torch_dtype_name)
            a = torch.randn(MATMUL_N, MATMUL_N).to(torch_dtype)
            b = torch.randn(MATMUL_N, MATMUL_N).to(torch_dtype)
            return lambda: torch.mm(a, b)

        return setup

    def conv(torch_dtype_name: str) -> Callable[[], Callable[[], Any]]:
        def setup() -> Callable[[], Any]:
            import torch

            torch_dtype = getattr(torch, torch_dtype_name)
            cl = torch.channels_last
            x = torch.randn(1, CONV_CHANNELS, CONV_HW, CONV_HW).to(torch_dtype).contiguous(memory_format=cl)
            w = torch.randn(CONV_CHANNELS, CONV_CHANNELS, 3, 3).to(torch_dtype).contiguous(memory_format=cl)

            def call() -> Any:
                with torch.inference_mode():
                    return torch.nn.functional.conv2d(x, w, padding=1)

            return call

        return setup

    def int_mm() -> Callable[[], Any]:
        import torch

        a = torch.randint(-128, 128, (MATMUL_N, MATMUL_N), dtype=torch.int8)
        b = torch.randint(-128, 128, (MATMUL_N, MATMUL_N), dtype=torch.int8)
        return lambda: torch._int_mm(a, b)

    n, c, hw = MATMUL_N, CONV_CHANNELS, CONV_HW
    if dtype == "int8":
        return [KernelSpec("torch", f"torch._int_mm int8 {n}x{n}x{n}", MATMUL_FLOPS, int_mm)]
    name = {"fp32": "float32", "bf16": "bfloat16", "fp16": "float16"}[dtype]
    return [
        KernelSpec("torch", f"torch.mm {dtype} {n}x{n}x{n}", MATMUL_FLOPS, mm(name)),
        KernelSpec("torch", f"torch conv2d {dtype} 1x{c}x{hw}x{hw}, {c} 3x3 filters, channels_last",
                   CONV_FLOPS, conv(name)),
    ]


def _openvino_opset() -> Any:
    """The newest ``openvino.opsetNN`` module with the four ops used here.

    Some releases ship a newest opset module that holds only that opset's new ops (OpenVINO
    2026.4's ``opset17`` has no ``parameter``), so each candidate is checked, not just imported.
    """
    import importlib

    needed = ("parameter", "constant", "convolution", "fake_quantize")
    for name in [f"openvino.opset{v}" for v in range(20, 0, -1)] + ["openvino.runtime.opset8"]:
        try:
            module = importlib.import_module(name)
        except ImportError:
            continue
        if all(hasattr(module, op) for op in needed):
            return module
    raise ImportError("no openvino opset module with parameter, constant, convolution and fake_quantize")


def _openvino_spec(dtype: str, threads: int) -> KernelSpec:
    """The ResNet 3x3 conv compiled on OpenVINO's CPU plugin. int8 is a FakeQuantize on the input
    (256 levels) and on the weights (255 levels, per output channel): OpenVINO's low-precision
    transformations turn that into its u8 x s8 convolution, the path its int8 models take."""
    hint = {"fp32": "f32", "bf16": "bf16", "fp16": "f16", "int8": "f32"}[dtype]

    def setup() -> Callable[[], Any]:
        import numpy as np
        import openvino as ov

        ops = _openvino_opset()
        rng = np.random.default_rng(0)
        shape = [1, CONV_CHANNELS, CONV_HW, CONV_HW]
        x = rng.standard_normal(shape).astype(np.float32)
        weights = rng.standard_normal((CONV_CHANNELS, CONV_CHANNELS, 3, 3)).astype(np.float32)
        param = ops.parameter(shape, ov.Type.f32, name="x")
        source: Any = param
        kernel: Any = ops.constant(weights)
        if dtype == "int8":
            lo, hi = ops.constant(np.float32(-4.0)), ops.constant(np.float32(4.0))
            source = ops.fake_quantize(param, lo, hi, lo, hi, 256)
            wlo = ops.constant(np.full((CONV_CHANNELS, 1, 1, 1), -4.0, np.float32))
            whi = ops.constant(np.full((CONV_CHANNELS, 1, 1, 1), 4.0, np.float32))
            kernel = ops.fake_quantize(kernel, wlo, whi, wlo, whi, 255)
        conv = ops.convolution(source, kernel, [1, 1], [1, 1], [1, 1], [1, 1])
        model = ov.Model([conv], [param], "roof_conv")
        config = {
            "PERFORMANCE_HINT": "LATENCY",
            "NUM_STREAMS": 1,
            "INFERENCE_NUM_THREADS": threads,
            "INFERENCE_PRECISION_HINT": hint,
        }
        compiled = ov.Core().compile_model(model, "CPU", config)
        request = compiled.create_infer_request()
        request.set_input_tensor(ov.Tensor(x, shared_memory=True))
        alive = (x, compiled)  # the tensor shares x's memory: x must outlive every infer()

        def call() -> Any:
            assert alive
            return request.infer()

        return call

    c, hw = CONV_CHANNELS, CONV_HW
    what = "FakeQuantize u8 x s8" if dtype == "int8" else f"INFERENCE_PRECISION_HINT {hint}"
    return KernelSpec("openvino", f"conv 1x{c}x{hw}x{hw}, {c} 3x3 filters, {what}", CONV_FLOPS, setup)


def _onnxruntime_specs(threads: int) -> list[KernelSpec]:
    """ONNX Runtime's u8 x s8 kernels (MLAS): MatMulInteger and QLinearConv, built in memory."""

    def session(graph: Any) -> Any:
        import onnx
        import onnxruntime as ort

        model = onnx.helper.make_model(graph, opset_imports=[onnx.helper.make_opsetid("", 13)])
        model.ir_version = 8  # old enough for any ONNX Runtime that has these ops
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.log_severity_level = 3
        return ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])

    def matmul_integer() -> Callable[[], Any]:
        import numpy as np
        from onnx import TensorProto, helper, numpy_helper

        n, rng = MATMUL_N, np.random.default_rng(0)
        b = numpy_helper.from_array(rng.integers(-128, 128, (n, n), dtype=np.int8), "B")
        graph = helper.make_graph(
            [helper.make_node("MatMulInteger", ["A", "B"], ["Y"])], "roof_matmul_integer",
            [helper.make_tensor_value_info("A", TensorProto.UINT8, [n, n])],
            [helper.make_tensor_value_info("Y", TensorProto.INT32, [n, n])], [b])
        sess = session(graph)
        feed = {"A": rng.integers(0, 256, (n, n), dtype=np.uint8)}
        return lambda: sess.run(None, feed)

    def qlinear_conv() -> Callable[[], Any]:
        import numpy as np
        from onnx import TensorProto, helper, numpy_helper

        c, hw, rng = CONV_CHANNELS, CONV_HW, np.random.default_rng(0)
        init = [
            numpy_helper.from_array(np.array(0.05, np.float32), "x_scale"),
            numpy_helper.from_array(np.array(128, np.uint8), "x_zero"),
            numpy_helper.from_array(rng.integers(-127, 128, (c, c, 3, 3), dtype=np.int8), "w"),
            numpy_helper.from_array(np.array(0.01, np.float32), "w_scale"),
            numpy_helper.from_array(np.array(0, np.int8), "w_zero"),
            numpy_helper.from_array(np.array(1.0, np.float32), "y_scale"),
            numpy_helper.from_array(np.array(128, np.uint8), "y_zero"),
        ]
        node = helper.make_node(
            "QLinearConv", ["x", "x_scale", "x_zero", "w", "w_scale", "w_zero", "y_scale", "y_zero"], ["y"],
            kernel_shape=[3, 3], pads=[1, 1, 1, 1])
        graph = helper.make_graph(
            [node], "roof_qlinear_conv",
            [helper.make_tensor_value_info("x", TensorProto.UINT8, [1, c, hw, hw])],
            [helper.make_tensor_value_info("y", TensorProto.UINT8, [1, c, hw, hw])], init)
        sess = session(graph)
        feed = {"x": rng.integers(0, 256, (1, c, hw, hw), dtype=np.uint8)}
        return lambda: sess.run(None, feed)

    n, c, hw = MATMUL_N, CONV_CHANNELS, CONV_HW
    return [
        KernelSpec("onnxruntime", f"MatMulInteger u8 x s8 {n}x{n}x{n}", MATMUL_FLOPS, matmul_integer),
        KernelSpec("onnxruntime", f"QLinearConv u8 x s8 1x{c}x{hw}x{hw}, {c} 3x3 filters", CONV_FLOPS, qlinear_conv),
    ]


def _kernel_specs(dtype: str, threads: int, features: dict[str, Any]) -> list[KernelSpec]:
    """The kernels that compute at ``dtype``'s arithmetic, whichever libraries provide them.

    fp16 without AVX512-FP16 has no fp16 arithmetic: backends run fp16 models in fp32, so the
    fp32 kernels are the ones that bound them.
    """
    if dtype == "fp16":
        specs = [
            KernelSpec(s.library, f"{s.kernel} (fp16 models compute in fp32)", s.flops, s.setup)
            for s in _kernel_specs("fp32", threads, features)
        ]
        if "avx512_fp16" in (features.get("flags") or set()):
            specs += _torch_specs("fp16") + [_openvino_spec("fp16", threads)]
        return specs
    specs = _torch_specs(dtype) + [_openvino_spec(dtype, threads)]
    if dtype == "int8":
        specs += _onnxruntime_specs(threads)
    return specs


def best_kernels(dtype: str, threads: int, features: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """The throughput installed libraries reach at ``dtype``'s arithmetic on ``threads`` threads.

    Each entry is ``{"library", "kernel", "gflops", "seconds"}`` (int8: GOP/s). A kernel whose
    library is missing or that fails is left out, never fatal: the roof is a maximum, and a
    missing candidate only leaves the other kernels and the theoretical
    figure to set the roof. Warnings are silenced while timing:
    library chatter is not what this measures, and a test run that turns warnings into errors
    would otherwise drop kernels.
    """
    if dtype not in DTYPES:
        raise ValueError(f"unknown dtype {dtype!r}; expected one of {DTYPES}")
    if threads < 1:
        raise ValueError(f"threads must be at least 1, got {threads}")
    features = cpu_features() if features is None else features
    results = []
    for spec in _kernel_specs(dtype, threads, features):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                if spec.library == "torch":
                    with _torch_threads(threads):
                        seconds = _best_seconds(spec.setup())
                else:
                    seconds = _best_seconds(spec.setup())
        except Exception as exc:  # an unavailable kernel is skipped, not fatal
            log.debug("roof kernel %s %s skipped: %s: %s", spec.library, spec.kernel, type(exc).__name__, exc)
            continue
        results.append({"library": spec.library, "kernel": spec.kernel,
                        "gflops": spec.flops / seconds / 1e9, "seconds": seconds})
    return results


# --------------------------------------------------------------------------- roofs


def _clock(features: dict[str, Any]) -> tuple[float | None, str]:
    """(GHz, how it was obtained): measured, else /proc/cpuinfo's nominal "cpu MHz"."""
    measured = measure_clock_ghz()
    if measured is not None:
        return measured["ghz"], f"measured: {measured['method']}"
    if features.get("mhz"):
        return features["mhz"] / 1000.0, (
            "/proc/cpuinfo cpu MHz (the clock could not be measured here; the nominal figure "
            "may be below the boost clock, so the theoretical roof may be low)"
        )
    return None, "unknown (neither measured nor listed in /proc/cpuinfo)"


def _name(kernel: dict[str, Any]) -> str:
    return f"{kernel['library']}: {kernel['kernel']}"


def _roof(dtype: str, threads: int, features: dict[str, Any], ghz: float | None, clock_basis: str,
          kernels: list[dict[str, Any]]) -> dict[str, Any]:
    units = "GOP/s" if dtype == "int8" else "GFLOP/s"
    per_cycle, per_cycle_basis = flops_per_cycle(features, dtype)
    cores = max(1, min(threads, int(features.get("physical_cores") or 1)))
    theoretical = cores * per_cycle * ghz if ghz else None
    best = max(kernels, key=lambda k: k["gflops"], default=None)
    clock_source = "measured clock" if clock_basis.startswith("measured") else "nominal clock"
    formula = f"{cores} core{'s' if cores != 1 else ''} x {per_cycle:g} per cycle x {ghz or 0:.2f} GHz {clock_source}"
    gflops: float | None
    if best is None and theoretical is None:
        gflops, basis = None, f"{dtype}: no roof: the clock is unknown and no kernel ran"
    elif best is not None and (theoretical is None or best["gflops"] > theoretical):
        gflops = best["gflops"]
        if theoretical is None:
            why = "no theoretical figure, the clock is unknown"
        else:
            why = (f"it beat the theoretical {theoretical:.1f} ({formula}), so the per-cycle table "
                   f"underestimates this CPU and the roof is the measured kernel")
        basis = f"{dtype} roof {gflops:.1f} {units}: the best measured kernel ({_name(best)}); {why}"
    else:
        assert theoretical is not None
        gflops = theoretical
        if best is None:
            reached = "; no kernel ran"
        else:
            reached = (f"; the best measured kernel ({_name(best)}) reached "
                       f"{best['gflops']:.1f} ({best['gflops'] / theoretical:.0%})")
        basis = f"{dtype} roof {gflops:.1f} {units}: the theoretical peak, {formula}{reached}"
    return {
        "gflops": gflops,
        "units": units,
        "theoretical_gflops": theoretical,
        "clock_ghz": ghz,
        "clock_basis": clock_basis,
        "flops_per_cycle": per_cycle,
        "per_cycle_basis": per_cycle_basis,
        "cores": cores,
        "best_kernel": best,
        "kernels": kernels,
        "basis": basis,
    }


@functools.cache
def _machine_roofs(threads: int) -> dict[str, dict[str, Any]]:
    features = cpu_features()
    # The clock first, on a quiet core: the kernels after it heat the chip and lower its boost.
    ghz, clock_basis = _clock(features)
    kernels: dict[str, list[dict[str, Any]]] = {}
    for dtype in DTYPES:
        if dtype == "fp16" and "avx512_fp16" not in features["flags"]:
            # The same fp32 kernels _kernel_specs would rerun: relabel instead of timing twice.
            kernels[dtype] = [{**k, "kernel": f"{k['kernel']} (fp16 models compute in fp32)"}
                              for k in kernels["fp32"]]
        else:
            kernels[dtype] = best_kernels(dtype, threads, features)
    return {dtype: _roof(dtype, threads, features, ghz, clock_basis, kernels[dtype]) for dtype in DTYPES}


def machine_roofs(threads: int) -> dict[str, dict[str, Any]]:
    """Each dtype's roof on ``threads`` threads: ``max(theoretical, best measured kernel)``.

    Measured once per ``threads`` value per process (a few seconds) and copied out, so callers
    may change what they get. ``clear_cache()`` forgets the measurements.
    """
    if threads < 1:
        raise ValueError(f"threads must be at least 1, got {threads}")
    return copy.deepcopy(_machine_roofs(threads))


def clear_cache() -> None:
    """Forget the measured roofs (tests, or after the machine's state changed)."""
    _machine_roofs.cache_clear()


def roof_for(roofs: dict[str, dict[str, Any]], dtype: str) -> tuple[float | None, str]:
    """(roof GFLOP/s, basis) for ``dtype`` out of ``machine_roofs``' result; None if absent."""
    entry = roofs.get(dtype)
    if not entry or entry.get("gflops") is None:
        return None, f"no roof for {dtype}" + (f": {entry['basis']}" if entry else "")
    return float(entry["gflops"]), str(entry["basis"])


# --------------------------------------------------------------------------- command line


def _default_threads() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def format_table(roofs: dict[str, dict[str, Any]]) -> str:
    """The roofs as a plain-text table, one dtype a row."""
    def num(value: float | None) -> str:
        return "-" if value is None else f"{value:.1f}"

    rows = [("dtype", "roof", "theoretical", "per cycle", "best kernel", "library", "kernel")]
    for dtype, entry in roofs.items():
        best = entry.get("best_kernel")
        rows.append((dtype, num(entry["gflops"]), num(entry["theoretical_gflops"]), f"{entry['flops_per_cycle']:g}",
                     num(best["gflops"]) if best else "-", best["library"] if best else "-",
                     best["kernel"] if best else "-"))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row[:-1], widths, strict=True)) + "  " + row[-1]
             for row in rows]
    first = next(iter(roofs.values()), None)
    if first is not None:
        clock = first["clock_ghz"]
        lines.append("")
        lines.append(f"clock: {'-' if clock is None else f'{clock:.2f} GHz'} ({first['clock_basis']}); "
                     f"cores: {first['cores']}; figures in GFLOP/s (int8: GOP/s)")
        lines += [entry["basis"] for entry in roofs.values()]
        lines.append("")
        lines.append("measured kernels:")
        for dtype, entry in roofs.items():
            lines += [f"  {dtype:5} {k['gflops']:8.1f}  {_name(k)}" for k in entry["kernels"]]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m resnetbench.roof", description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=_default_threads(),
                        help="threads the kernels run on (default: the CPUs this process may use)")
    parser.add_argument("--json", action="store_true", help="print the roofs as JSON instead of a table")
    args = parser.parse_args(argv)
    if args.threads < 1:
        parser.error("--threads must be at least 1")
    roofs = machine_roofs(args.threads)
    print(json.dumps(roofs, indent=2) if args.json else format_table(roofs))
    return 0


if __name__ == "__main__":
    sys.exit(main())
