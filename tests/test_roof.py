"""The per-dtype roofs (resnetbench/roof.py): the per-cycle table, the clock, and max(theory, kernels).

The table is checked on made-up feature dicts (so every row is exercised on any machine); the
clock and the kernels are measured for real once, at one thread, to keep the file fast.
"""

from __future__ import annotations

import platform
import struct
import sys

import pytest

from resnetbench import roof

ZEN4 = {"vendor": "AuthenticAMD", "family": 25, "model": 17, "model_name": "AMD EPYC",
        "flags": {"avx2", "fma", "avx512f", "avx512_bf16", "avx512_vnni"}, "physical_cores": 2, "mhz": 2600.0}
SAPPHIRE_RAPIDS = {"vendor": "GenuineIntel", "family": 6, "model": 143, "model_name": "Xeon Platinum 8480",
                   "flags": {"avx2", "fma", "avx512f", "avx512_bf16", "avx512_vnni", "avx512_fp16",
                             "amx_bf16", "amx_int8", "amx_tile"}, "physical_cores": 56, "mhz": 2000.0}
AVX2_INTEL = {"vendor": "GenuineIntel", "family": 6, "model": 158, "model_name": "Core i7-8700",
              "flags": {"avx", "avx2", "fma"}, "physical_cores": 6, "mhz": 3200.0}
UNKNOWN = {"vendor": "CentaurHauls", "family": 7, "model": 59, "model_name": "mystery",
           "flags": {"avx", "avx2", "fma"}, "physical_cores": 4, "mhz": 2000.0}
ZEN5 = {"vendor": "AuthenticAMD", "family": 0x1A, "model": 2, "model_name": "EPYC 9005",
        "flags": {"avx2", "fma", "avx512f", "avx512_bf16", "avx512_vnni"}, "physical_cores": 8, "mhz": 3000.0}
NO_FLAGS = {"vendor": "", "family": None, "model": None, "model_name": "arm64", "flags": set(),
            "physical_cores": 4, "mhz": None}

X86_64_LINUX = roof._can_run_x86_64_code()


@pytest.fixture(autouse=True)
def fresh_roofs():
    roof.clear_cache()
    yield
    roof.clear_cache()


def fake_kernels(*gflops):
    return lambda dtype, threads, features=None: [
        {"library": "fake", "kernel": f"{dtype} kernel {i}", "gflops": g, "seconds": 0.01} for i, g in enumerate(gflops)]


# ---------------------------------------------------------------- flops_per_cycle


@pytest.mark.parametrize("features, dtype, expected", [
    (ZEN4, "fp32", 32), (ZEN4, "bf16", 64), (ZEN4, "int8", 128), (ZEN4, "fp16", 32),
    (SAPPHIRE_RAPIDS, "fp32", 64), (SAPPHIRE_RAPIDS, "bf16", 1024), (SAPPHIRE_RAPIDS, "int8", 2048),
    (SAPPHIRE_RAPIDS, "fp16", 128),
    (AVX2_INTEL, "fp32", 32), (AVX2_INTEL, "int8", 64), (AVX2_INTEL, "bf16", 32), (AVX2_INTEL, "fp16", 32),
    (ZEN5, "fp32", 64), (ZEN5, "bf16", 128), (ZEN5, "int8", 256),
    (UNKNOWN, "fp32", 32), (NO_FLAGS, "fp32", 16),
])
def test_flops_per_cycle_table(features, dtype, expected):
    value, why = roof.flops_per_cycle(features, dtype)
    assert value == expected, why
    assert why


def test_zen4_explains_avx512_on_256_bit_pipes_and_the_bf16_and_vnni_factors():
    assert "Zen 3/Zen 4" in roof.flops_per_cycle(ZEN4, "fp32")[1]
    assert "vdpbf16ps" in roof.flops_per_cycle(ZEN4, "bf16")[1]
    assert "vpdpbusd" in roof.flops_per_cycle(ZEN4, "int8")[1]
    assert "AMX" in roof.flops_per_cycle(SAPPHIRE_RAPIDS, "int8")[1]


def test_an_unknown_microarchitecture_gets_an_upper_bound_and_says_so():
    value, why = roof.flops_per_cycle(UNKNOWN, "fp32")
    assert value == 2 * 256 / 32 * 2
    assert "upper bound" in why
    assert "upper bound" in roof.flops_per_cycle(NO_FLAGS, "fp32")[1]


def test_int8_without_vnni_is_an_upper_estimate():
    assert "upper estimate" in roof.flops_per_cycle(AVX2_INTEL, "int8")[1]


@pytest.mark.parametrize("features", [ZEN4, AVX2_INTEL, UNKNOWN, ZEN5, NO_FLAGS])
def test_fp16_without_avx512_fp16_is_fp32(features):
    assert roof.flops_per_cycle(features, "fp16")[0] == roof.flops_per_cycle(features, "fp32")[0]
    assert "fp32" in roof.flops_per_cycle(features, "fp16")[1]


def test_bf16_without_a_bf16_instruction_is_fp32():
    assert roof.flops_per_cycle(AVX2_INTEL, "bf16")[0] == roof.flops_per_cycle(AVX2_INTEL, "fp32")[0]


def test_a_table_row_is_capped_by_the_vector_width_the_flags_expose():
    # A Zen 4 guest whose hypervisor hides AVX-512 and AVX: only 128-bit SSE is usable.
    sse_only = {**ZEN4, "flags": {"sse4_2"}}
    assert roof.flops_per_cycle(sse_only, "fp32")[0] == 2 * 128 / 32 * 2


def test_an_unknown_dtype_is_refused():
    with pytest.raises(ValueError, match="unknown dtype"):
        roof.flops_per_cycle(ZEN4, "fp8")


# ---------------------------------------------------------------- cpu features


CPUINFO = """processor\t: 0
vendor_id\t: AuthenticAMD
cpu family\t: 25
model\t\t: 17
model name\t: AMD EPYC 9R14
cpu MHz\t\t: 2596.136
physical id\t: 0
core id\t\t: 0
flags\t\t: fpu avx2 fma avx512f avx512_bf16 avx512_vnni

""" + "\n\n".join(
    f"processor\t: {i}\nvendor_id\t: AuthenticAMD\ncpu family\t: 25\nphysical id\t: 0\ncore id\t\t: {i % 2}\n"
    "flags\t\t: fpu avx2" for i in range(1, 4))


def test_parse_cpuinfo_reads_the_fields_and_counts_physical_cores_not_smt_siblings():
    features = roof.parse_cpuinfo(CPUINFO)
    assert features["vendor"] == "AuthenticAMD"
    assert (features["family"], features["model"]) == (25, 17)
    assert features["model_name"] == "AMD EPYC 9R14"
    assert {"avx512f", "avx512_bf16", "avx512_vnni"} <= features["flags"]
    assert features["physical_cores"] == 2  # four logical CPUs on two cores
    assert features["mhz"] == pytest.approx(2596.136)
    assert roof.flops_per_cycle(features, "int8")[0] == 128


def test_cpu_features_of_this_machine():
    features = roof.cpu_features()
    assert isinstance(features["flags"], set)
    assert features["physical_cores"] >= 1
    if sys.platform == "linux" and platform.machine() == "x86_64":
        assert features["vendor"] and "sse2" in features["flags"]


def test_cpu_features_off_linux_falls_back_to_platform(monkeypatch):
    monkeypatch.setattr(roof, "CPUINFO", "/nonexistent/cpuinfo")
    features = roof.cpu_features()
    assert features["flags"] == set()
    assert features["source"] == "platform"
    assert features["physical_cores"] >= 1
    assert roof.flops_per_cycle(features, "fp32")[0] == 16


# ---------------------------------------------------------------- clock


def _modrm(byte: int) -> tuple[int, int, int]:
    """(mod, reg, rm) of a ModRM byte; registers numbered rax=0, rcx=1, rdx=2."""
    return byte >> 6, (byte >> 3) & 7, byte & 7


def test_the_clock_loop_encoding():
    code = roof.clock_loop_code(adds=3)
    assert code[:3] == bytes.fromhex("4889f8")  # mov rax, rdi
    assert code[3:8] == bytes.fromhex("b901000000")  # mov ecx, 1 (B8+rcx, imm32 = 1)
    assert code[8:17] == bytes.fromhex("4801ca") * 3  # add rdx, rcx
    assert code[17:20] == bytes.fromhex("48ffc8")  # dec rax
    assert code[20:22] == bytes.fromhex("0f85")  # jnz rel32
    (rel32,) = struct.unpack("<i", code[22:26])
    assert 26 + rel32 == 8  # relative to the end of the jnz, back to the first add, past mov ecx
    assert code[26:] == b"\xc3" and len(code) == 27
    full = roof.clock_loop_code()
    assert full.count(roof.ADD_RDX_RCX) == roof.CLOCK_ADDS
    # 48 01 /r: REX.W ADD r/m64, r64; ModRM ca = register direct, reg rcx, r/m rdx: add rdx, rcx
    rex, opcode, modrm = roof.ADD_RDX_RCX
    assert (rex, opcode, _modrm(modrm)) == (0x48, 0x01, (3, 1, 2))
    # 48 0f af /r: REX.W IMUL r64, r/m64; ModRM d2 = register direct, rdx, rdx: imul rdx, rdx
    rex, escape, opcode, modrm = roof.IMUL_RDX_RDX
    assert (rex, escape, opcode, _modrm(modrm)) == (0x48, 0x0F, 0xAF, (3, 2, 2))
    imul = roof.clock_loop_code(adds=3, instruction=roof.IMUL_RDX_RDX)
    assert imul[8:20] == roof.IMUL_RDX_RDX * 3 and imul[20:23] == bytes.fromhex("48ffc8")


def _loop_body(code: bytes) -> bytes:
    """The bytes from the jnz's target (``top``) up to the ``dec rax; jnz`` that closes the loop."""
    (rel32,) = struct.unpack("<i", code[-5:-1])
    return code[len(code) - 1 + rel32 : -1 - 6 - 3]


def test_the_clock_chain_has_no_add_immediate():
    # Golden Cove / Sapphire Rapids fold chains of ``add reg, imm`` in the renamer (the old
    # ``add rdx, 1`` loop read 7.57 to 17 GHz there): no REX.W 80/81/83 /0 (ADD r/m64, imm) may
    # come back in the timed chain.
    body = _loop_body(roof.clock_loop_code())
    assert body == roof.ADD_RDX_RCX * roof.CLOCK_ADDS
    for i in range(len(body) - 2):
        if body[i] & 0xF0 == 0x40 and body[i + 1] in (0x80, 0x81, 0x83):
            assert _modrm(body[i + 2])[1] != 0, f"add-with-immediate at byte {i} of the clock loop"


def test_a_disagreeing_imul_chain_distrusts_the_clock(monkeypatch):
    monkeypatch.setattr(roof, "_can_run_x86_64_code", lambda: True)
    add_seconds = roof.CLOCK_ADDS * 1_000_000 / 3e9  # 3 GHz

    def chain(imul_ghz):
        imul_seconds = roof.CLOCK_ADDS * 1_000_000 * roof.IMUL_CYCLES / (imul_ghz * 1e9)
        return lambda instruction: (
            (add_seconds if instruction == roof.ADD_RDX_RCX else imul_seconds), 1_000_000)

    monkeypatch.setattr(roof, "_time_chain", chain(3.2))
    measured = roof.measure_clock_ghz()
    assert measured is not None and measured["ghz"] == pytest.approx(3.0)
    assert "imul" in measured["method"]
    # the add chain runs at 2 per cycle (folded), or the imul chain is slower than its 3 cycles
    monkeypatch.setattr(roof, "_time_chain", chain(1.5))
    assert roof.measure_clock_ghz() is None
    monkeypatch.setattr(roof, "_time_chain", chain(6.0))
    assert roof.measure_clock_ghz() is None


def _executable_memory_allowed() -> bool:
    try:
        roof._executable_buffer(b"\xc3").close()
    except (OSError, ValueError):
        return False
    return True


@pytest.mark.timing
def test_the_measured_clock_is_plausible():
    measured = roof.measure_clock_ghz()
    if not X86_64_LINUX:
        assert measured is None
        return
    if measured is None and not _executable_memory_allowed():
        pytest.skip("this system refuses executable anonymous memory")
    assert measured is not None
    assert 0.5 <= measured["ghz"] <= 7.0
    assert "dependent register adds (add rdx, rcx" in measured["method"]


def test_off_x86_64_there_is_no_measured_clock(monkeypatch):
    monkeypatch.setattr(platform, "machine", lambda: "aarch64")
    assert roof.measure_clock_ghz() is None


def test_a_refused_executable_mapping_falls_back_to_cpuinfo(monkeypatch):
    def refuse(code):
        raise OSError(13, "Permission denied")

    monkeypatch.setattr(roof, "_executable_buffer", refuse)
    assert roof.measure_clock_ghz() is None
    monkeypatch.setattr(roof, "cpu_features", lambda: dict(ZEN4))
    monkeypatch.setattr(roof, "best_kernels", fake_kernels(1.0))
    roofs = roof.machine_roofs(2)
    fp32 = roofs["fp32"]
    assert fp32["clock_ghz"] == pytest.approx(2.6)
    assert "cpu MHz" in fp32["clock_basis"] and "could not be measured" in fp32["clock_basis"]
    assert fp32["gflops"] == pytest.approx(2 * 32 * 2.6)
    assert "nominal clock" in fp32["basis"]


# ---------------------------------------------------------------- roofs


def test_a_kernel_above_the_theoretical_figure_becomes_the_roof_and_the_basis_says_so(monkeypatch):
    monkeypatch.setattr(roof, "cpu_features", lambda: dict(ZEN4))
    monkeypatch.setattr(roof, "measure_clock_ghz", lambda: {"ghz": 3.0, "method": "fake"})
    monkeypatch.setattr(roof, "best_kernels", fake_kernels(50.0, 200.0))
    roofs = roof.machine_roofs(2)
    fp32 = roofs["fp32"]
    assert fp32["theoretical_gflops"] == pytest.approx(2 * 32 * 3.0)  # 192 < 200
    assert fp32["gflops"] == 200.0
    assert fp32["best_kernel"]["gflops"] == 200.0
    assert "underestimates" in fp32["basis"] and "measured kernel" in fp32["basis"]
    assert roof.roof_for(roofs, "fp32") == (200.0, fp32["basis"])
    int8 = roofs["int8"]  # the same kernels are far below int8's 768
    assert int8["gflops"] == int8["theoretical_gflops"] == pytest.approx(2 * 128 * 3.0)
    assert "underestimates" not in int8["basis"] and "GOP/s" in int8["basis"]


def test_a_kernel_below_the_theoretical_figure_leaves_the_theoretical_roof(monkeypatch):
    monkeypatch.setattr(roof, "cpu_features", lambda: dict(ZEN4))
    monkeypatch.setattr(roof, "measure_clock_ghz", lambda: {"ghz": 3.0, "method": "fake"})
    monkeypatch.setattr(roof, "best_kernels", fake_kernels(10.0, 150.0))
    for dtype, entry in roof.machine_roofs(4).items():
        assert entry["cores"] == 2  # min(threads, physical cores)
        assert entry["gflops"] == entry["theoretical_gflops"]
        assert entry["gflops"] >= max(k["gflops"] for k in entry["kernels"])
        assert "theoretical peak" in entry["basis"], dtype
        assert "underestimates" not in entry["basis"]


def test_no_clock_and_no_kernel_gives_no_roof(monkeypatch):
    monkeypatch.setattr(roof, "cpu_features", lambda: dict(NO_FLAGS))
    monkeypatch.setattr(roof, "measure_clock_ghz", lambda: None)
    monkeypatch.setattr(roof, "best_kernels", fake_kernels())
    roofs = roof.machine_roofs(1)
    gflops, basis = roof.roof_for(roofs, "fp32")
    assert gflops is None and "no roof" in basis
    assert roof.roof_for(roofs, "fp4") == (None, "no roof for fp4")


def test_roofs_are_cached_per_thread_count_and_copied_out(monkeypatch):
    calls = []
    monkeypatch.setattr(roof, "cpu_features", lambda: dict(ZEN4))
    monkeypatch.setattr(roof, "measure_clock_ghz", lambda: calls.append(1) or {"ghz": 3.0, "method": "fake"})
    monkeypatch.setattr(roof, "best_kernels", fake_kernels(1.0))
    first = roof.machine_roofs(1)
    first["fp32"]["gflops"] = -1
    assert roof.machine_roofs(1)["fp32"]["gflops"] > 0
    assert len(calls) == 1
    roof.machine_roofs(2)
    assert len(calls) == 2


def test_a_failing_kernel_is_skipped_and_torch_threads_are_restored(monkeypatch):
    import torch

    def boom():
        raise RuntimeError("not on this CPU")

    def tiny():
        a = torch.ones(8, 8)
        return lambda: torch.mm(a, a)

    specs = [roof.KernelSpec("torch", "boom", 1, boom), roof.KernelSpec("torch", "tiny", 1024, tiny)]
    monkeypatch.setattr(roof, "_kernel_specs", lambda dtype, threads, features: specs)
    before = torch.get_num_threads()
    kernels = roof.best_kernels("fp32", 1, ZEN4)
    assert [k["kernel"] for k in kernels] == ["tiny"]
    assert kernels[0]["gflops"] > 0 and kernels[0]["seconds"] > 0
    assert torch.get_num_threads() == before


def test_fp16_kernels_are_the_fp32_ones_without_avx512_fp16():
    specs = roof._kernel_specs("fp16", 1, ZEN4)
    assert specs and all("compute in fp32" in s.kernel for s in specs)
    native = roof._kernel_specs("fp16", 1, SAPPHIRE_RAPIDS)
    assert any("fp16" in s.kernel and "compute in fp32" not in s.kernel for s in native)


@pytest.mark.timing
def test_real_roofs_at_one_thread_are_never_below_a_measured_kernel():
    import torch

    before = torch.get_num_threads()
    roofs = roof.machine_roofs(1)
    assert torch.get_num_threads() == before
    assert set(roofs) == set(roof.DTYPES)
    for dtype, entry in roofs.items():
        assert entry["cores"] == 1
        assert entry["gflops"] is not None, entry["basis"]
        if entry["theoretical_gflops"] is not None:
            assert entry["gflops"] >= entry["theoretical_gflops"]
        for kernel in entry["kernels"]:
            assert entry["gflops"] >= kernel["gflops"], (dtype, kernel)
        assert entry["basis"].startswith(f"{dtype} roof")
    libraries = {k["library"] for k in roofs["fp32"]["kernels"]}
    assert "torch" in libraries
    assert any(k["kernel"].startswith("torch.mm bf16") for k in roofs["bf16"]["kernels"])


def test_the_command_line_prints_a_table(monkeypatch, capsys):
    monkeypatch.setattr(roof, "cpu_features", lambda: dict(ZEN4))
    monkeypatch.setattr(roof, "measure_clock_ghz", lambda: {"ghz": 3.5, "method": "fake"})
    monkeypatch.setattr(roof, "best_kernels", fake_kernels(100.0))
    assert roof.main(["--threads", "2"]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0].split()[:4] == ["dtype", "roof", "theoretical", "per"]
    for dtype in roof.DTYPES:
        assert any(line.startswith(dtype) for line in out.splitlines())
    assert "224.0" in out  # 2 cores x 32 x 3.5 GHz
    assert roof.main(["--threads", "2", "--json"]) == 0
    assert '"fp32"' in capsys.readouterr().out
