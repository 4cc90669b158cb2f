"""Per-layer profiles of a latency case, and blame: which layers account for a regression.

A red gate says *that* a case got slower; this says *where*. Each profile comes from the
backend's own instrumentation, in a pass of its own after the timed loop (it never
disturbs the timing), and is reduced to **units**: the model's modules two levels deep
(``layer3.0`` for a ResNet block; top-level leaves such as ``conv1`` or ``fc`` as they are),
so that two runs, and two backends, name the same places.

- PyTorch eager: forward hooks on the unit modules time each call (``perf_counter`` before
  and after; a unit's time includes its children).
- ONNX Runtime: a second session over the same model file with ``enable_profiling``; node
  times from its trace are mapped back to module paths through the exporter's
  ``pkg.torch.onnx.name_scopes`` metadata, by node name or, for the nodes ORT's layout
  transformer makes (``relu_1_nchwc``), by the exported output value they are named
  after; what cannot be mapped is ``(unattributed)``.
- OpenVINO: its performance counters (``PERF_COUNT``) on a compiled model of its own; its
  node names are the ONNX node names (the IR is converted from the ONNX export), so the
  same ``name_scopes`` map, kept in the artifact's metadata, names their modules. The
  reorders it inserts are named ``<layouts>_<node>`` after the node they feed, and a node
  it made by fusing lists the layers it came from (``originalLayersNames``).
- TorchScript: ``torch.profiler`` on the loaded module. A saved graph loses its module
  scopes, so the export records each operator of the frozen graph with its module path
  (``torchscript_op_units``); the operators the profiler sees are aligned with that
  sequence by kind (``difflib``), which also carries the names through
  ``optimize_for_inference``, whose prepacked convolutions the profiler does not see (the
  time between two operators goes to the first: it is the work it started).
- compile (AOTInductor): the timed package has no instrumentation and ``torch.profiler``
  sees only its allocations, so a second package of the same exported program is compiled
  with inductor's ``cpp.enable_kernel_profile`` (a separate pass, its compile counted in the
  cost); its kernels and oneDNN calls are named by aligning them with the program's
  operators, whose module paths ``torch.export`` records.

``blame`` subtracts the base profile from the head profile unit by unit and ranks the
units by the time they added, each with its share of the total added time.
"""

from __future__ import annotations

import ast
import difflib
import json
import statistics
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

from resnetbench.config import PROFILE_DEFAULTS

UNATTRIBUTED = "(unattributed)"
REST = "(rest)"
DEFAULT_CALLS = PROFILE_DEFAULTS["calls"]
UNIT_DEPTH = 2


def unit_of(path: str) -> str:
    """The unit a module path belongs to: its first ``UNIT_DEPTH`` dotted components."""
    return ".".join(path.split(".")[:UNIT_DEPTH]) if path else REST


def _summary(per_call: dict[str, list[float]], totals: list[float], profiler: str, calls: int,
             cost_s: float) -> dict[str, Any]:
    total = statistics.median(totals)
    units = {name: statistics.median(values) for name, values in per_call.items()}
    rest = total - sum(units.values())
    if rest > 0.01 * total:
        units[REST] = rest
    ranked = sorted(units.items(), key=lambda kv: -kv[1])
    return {"profiler": profiler, "calls": calls, "total_ms": total, "cost_s": round(cost_s, 3),
            "units": [{"name": n, "ms": round(ms, 5), "share": round(ms / total, 5) if total > 0 else None}
                      for n, ms in ranked]}


# --------------------------------------------------------------------------- PyTorch modules


def unit_modules(module: Any) -> dict[str, Any]:
    """Unit name -> module: modules ``UNIT_DEPTH`` deep, and shallower ones without children."""
    units = {}
    for name, child in module.named_modules():
        depth = len(name.split(".")) if name else 0
        if depth == UNIT_DEPTH or (0 < depth < UNIT_DEPTH and not any(True for _ in child.children())):
            units[name] = child
    return units


def profile_torch_module(module: Any, call: Callable[[], Any], calls: int = DEFAULT_CALLS) -> dict[str, Any]:
    """Per-unit milliseconds of ``call()`` (which runs ``module``), timed by forward hooks."""
    start_cost = time.perf_counter()
    clock = time.perf_counter
    started: dict[str, float] = {}
    spent: dict[str, float] = defaultdict(float)
    handles = []
    for name, unit in unit_modules(module).items():
        def pre(mod: Any, args: Any, name: str = name) -> None:
            started[name] = clock()

        def post(mod: Any, args: Any, out: Any, name: str = name) -> None:
            spent[name] += clock() - started.pop(name)

        try:
            handles += [unit.register_forward_pre_hook(pre), unit.register_forward_hook(post)]
        except (RuntimeError, AttributeError):  # e.g. a to_mkldnn ScriptModule: its time stays in (rest)
            continue
    if not handles:
        raise ValueError("the module has no submodules to attribute time to")
    per_call: dict[str, list[float]] = defaultdict(list)
    totals = []
    try:
        for _ in range(2):
            call()
        for _ in range(calls):
            spent.clear()
            t0 = clock()
            call()
            totals.append((clock() - t0) * 1e3)
            for name, seconds in spent.items():
                per_call[name].append(seconds * 1e3)
    finally:
        for handle in handles:
            handle.remove()
    return _summary(per_call, totals, "forward hooks on modules (perf_counter)", calls, time.perf_counter() - start_cost)


# --------------------------------------------------------------------------- ONNX Runtime


def onnx_node_scopes(model_path: Path) -> dict[str, str]:
    """ONNX node name -> the module path the exporter recorded for it (name_scopes metadata)."""
    import onnx

    model = onnx.load(str(model_path), load_external_data=False)
    scopes = {}
    for node in model.graph.node:
        meta = {p.key: p.value for p in node.metadata_props}
        text = meta.get("pkg.torch.onnx.name_scopes")
        if not text:
            continue
        try:
            names = ast.literal_eval(text)
        except (ValueError, SyntaxError):
            continue
        modules = [n for n in names[:-1] if n]  # the last entry is the op itself
        scope = modules[-1] if modules else ""
        scopes[node.name] = scope
        # ORT's layout transformer names the nodes it makes after their output values
        # ("relu_1_nchwc" for a Conv fused with the ReLU whose output was "relu_1")
        for output in node.output:
            scopes.setdefault(output, scope)
    return scopes


def _scope_of(node_name: str, scopes: dict[str, str], by_length: list[str]) -> str | None:
    for name in (node_name, node_name.removesuffix("_nchwc")):
        if name in scopes:
            return scopes[name]
    # ORT keeps an exported node's name as the prefix of what it fuses or inserts from it
    for name in by_length:
        if node_name.startswith(name):
            return scopes[name]
    # OpenVINO names a reorder it inserts after the node it feeds: "x_abcd_acdb_node_Conv_292"
    for name in by_length:
        if node_name.endswith("_" + name):
            return scopes[name]
    return None


def profile_onnxruntime(model_path: Path, options: Any, feed: dict[str, Any], providers: list[str],
                        calls: int = DEFAULT_CALLS) -> dict[str, Any]:
    """Per-unit milliseconds from ONNX Runtime's own profiler, on a profiling session of the same model."""
    import onnxruntime as ort

    start_cost = time.perf_counter()
    scopes = onnx_node_scopes(model_path)
    by_length = sorted(scopes, key=len, reverse=True)
    options.enable_profiling = True
    options.profile_file_prefix = str(Path(tempfile.gettempdir()) / f"resnetbench-ort-profile-{time.time_ns()}")
    session = ort.InferenceSession(str(model_path), options, providers=providers)
    for _ in range(2):
        session.run(None, feed)
    run_starts = []
    for _ in range(calls):
        run_starts.append(time.perf_counter())
        session.run(None, feed)
    trace = Path(session.end_profiling())
    try:
        events = json.loads(trace.read_text())
    finally:
        trace.unlink(missing_ok=True)
    runs = [e for e in events if e.get("cat") == "Session" and e.get("name") == "model_run"]
    nodes = [e for e in events if e.get("cat") == "Node" and str(e.get("name", "")).endswith("_kernel_time")]
    # The last `calls` model_run events are the measured ones; node events fall inside them.
    measured = sorted(runs, key=lambda e: e["ts"])[-calls:]
    per_call: dict[str, list[float]] = defaultdict(list)
    totals = []
    for run in measured:
        begin, end = run["ts"], run["ts"] + run["dur"]
        spent: dict[str, float] = defaultdict(float)
        for event in nodes:
            if begin <= event["ts"] <= end:
                scope = _scope_of(event["name"].removesuffix("_kernel_time"), scopes, by_length)
                spent[UNATTRIBUTED if scope is None else unit_of(scope)] += event["dur"] / 1e3
        totals.append(run["dur"] / 1e3)
        for name, ms in spent.items():
            per_call[name].append(ms)
    if not totals:
        raise ValueError("ONNX Runtime's trace held no model_run events")
    return _summary(per_call, totals, "onnxruntime session profiling (enable_profiling)", calls,
                    time.perf_counter() - start_cost)


# --------------------------------------------------------------------------- OpenVINO


def profile_openvino(compiled: Any, native: Any, scopes: dict[str, str], calls: int = DEFAULT_CALLS) -> dict[str, Any]:
    """Per-unit milliseconds from OpenVINO's performance counters.

    ``compiled`` must have been compiled with ``PERF_COUNT: True`` (a compiled model of its
    own: the counters cost time). ``scopes`` maps ONNX node names to module paths
    (``onnx_node_scopes`` of the model the IR was converted from). The total per call is
    the sum of the executed nodes' times.
    """
    start_cost = time.perf_counter()
    by_length = sorted(scopes, key=len, reverse=True)
    # A node OpenVINO made by fusing (a Conv with the Mul after it, "Multiply_2630") lists the
    # layers it came from; any of them names its module.
    fused = {}
    for op in compiled.get_runtime_model().get_ordered_ops():
        rt_info = op.get_rt_info()
        if "originalLayersNames" in rt_info:
            fused[op.get_friendly_name()] = rt_info["originalLayersNames"].astype(str).split(",")
    request = compiled.create_infer_request()
    for _ in range(2):
        request.infer({0: native}, share_inputs=True)
    per_call: dict[str, list[float]] = defaultdict(list)
    totals = []
    for _ in range(calls):
        request.infer({0: native}, share_inputs=True)
        spent: dict[str, float] = defaultdict(float)
        for counter in request.profiling_info:
            if counter.status != counter.Status.EXECUTED:
                continue
            scope = next((found for name in [counter.node_name, *fused.get(counter.node_name, [])]
                          if (found := _scope_of(name, scopes, by_length)) is not None), None)
            spent[UNATTRIBUTED if scope is None else unit_of(scope)] += counter.real_time.total_seconds() * 1e3
        if not spent:
            raise ValueError("OpenVINO returned no executed performance counters (was PERF_COUNT set?)")
        # The total is the nodes' time: the call's wall time around it adds the Python call and
        # the plugin's scheduling, which vary by more than a small block's share.
        totals.append(sum(spent.values()))
        for name, ms in spent.items():
            per_call[name].append(ms)
    return _summary(per_call, totals, "openvino performance counters (PERF_COUNT)", calls,
                    time.perf_counter() - start_cost)


# --------------------------------------------------------------------------- TorchScript


def scope_path(scope_name: str) -> str:
    """``__module.layer1/__module.layer1.0/__module.layer1.0.conv1`` -> ``layer1.0.conv1``."""
    return scope_name.rsplit("/", 1)[-1].removeprefix("__module").removeprefix(".")


def torchscript_op_units(graph: Any) -> list[list[str]]:
    """[operator kind, module path] for each operator of a TorchScript graph, in order.

    Taken from the frozen graph before it is saved: ``torch.jit.save`` drops the scopes.
    """
    return [[node.kind(), scope_path(node.scopeName())] for node in graph.nodes()
            if not node.kind().startswith("prim::")]


def exported_op_units(program: Any) -> list[list[str]]:
    """[operator kind, module path] for each operator of a ``torch.export`` program, in order
    (the module path from the ``nn_module_stack`` the export records on each node)."""
    units = []
    for node in program.graph.nodes:
        if node.op != "call_function":
            continue
        stack = list((node.meta.get("nn_module_stack") or {}).values())
        units.append([f"aten::{getattr(node.target, '_opname', node.target)}", stack[-1][0] if stack else ""])
    return units


def _op_class(kind: str) -> str:
    """What an operator does, for aligning a recorded graph with what ran: ``aten::relu_`` -> ``relu``,
    ``aoti_torch_cpu_mkldnn__convolution_pointwise`` -> ``conv``."""
    name = kind.rsplit("::", 1)[-1].rstrip("_").lower()
    if "conv" in name:
        return "conv"
    if "linear" in name or name in ("addmm", "mm", "matmul"):
        return "linear"
    if "cpp_fused" in name:  # an inductor kernel: whatever it fused, it is none of the above
        return "fused"
    return name


def align_units(recorded: list[list[str]], ran: list[str]) -> list[str]:
    """The module path of each operator in ``ran``, by aligning its kinds with ``recorded``.

    Equal runs map one to one; a run of other operators in place of recorded ones (a
    prepacked convolution's ``aten::empty``) maps by position within the run; an operator
    with nothing recorded in its place (a layout conversion) belongs to the one before it.
    """
    a = [_op_class(kind) for kind, _ in recorded]
    b = [_op_class(kind) for kind in ran]
    units = [""] * len(ran)
    last = recorded[0][1] if recorded else ""
    for tag, i1, i2, j1, j2 in difflib.SequenceMatcher(None, a, b, autojunk=False).get_opcodes():
        for j in range(j1, j2):
            if tag == "equal":
                last = recorded[i1 + j - j1][1]
            elif tag == "replace":
                last = recorded[i1 + (j - j1) * (i2 - i1) // (j2 - j1)][1]
            units[j] = last
    return units


def _top_level_ops(call: Any) -> list[Any]:
    """The operators a profiled call ran: below the call's own event and any single wrapper
    (a ScriptModule's ``forward``)."""
    children = list(call.cpu_children)
    while len(children) == 1 and children[0].cpu_children:
        children = list(children[0].cpu_children)
    return sorted(children, key=lambda e: e.time_range.start)


def profile_torch_ops(call: Callable[[], Any], recorded: list[list[str]], calls: int = DEFAULT_CALLS) -> dict[str, Any]:
    """Per-unit milliseconds of ``call()`` from ``torch.profiler``, the operators named
    through ``recorded`` (``torchscript_op_units`` of the graph ``call`` runs)."""
    from torch.profiler import ProfilerActivity, record_function
    from torch.profiler import profile as torch_profile

    if not recorded:
        raise ValueError("the artifact's metadata has no operator -> module map (torchscript_op_units)")
    start_cost = time.perf_counter()
    marker = "resnetbench.profile.call"
    for _ in range(2):
        call()
    with torch_profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(calls):
            with record_function(marker):
                call()
    per_call: dict[str, list[float]] = defaultdict(list)
    totals = []
    for event in (e for e in prof.events() if e.name == marker):
        ops = _top_level_ops(event)
        if not ops:
            raise ValueError("torch.profiler recorded no operators inside the call")
        units = align_units(recorded, [op.name for op in ops])
        spent: dict[str, float] = defaultdict(float)
        ends = [op.time_range.start for op in ops[1:]] + [event.time_range.end]
        for op, unit, end in zip(ops, units, ends, strict=True):
            spent[unit_of(unit)] += (end - op.time_range.start) / 1e3  # microseconds -> ms
        totals.append((event.time_range.end - event.time_range.start) / 1e3)
        for name, ms in spent.items():
            per_call[name].append(ms)
    if not totals:
        raise ValueError("torch.profiler recorded none of the profiled calls")
    return _summary(per_call, totals, "torch.profiler operators, named through the export's operator map",
                    len(totals), time.perf_counter() - start_cost)


# --------------------------------------------------------------------------- blame


def blame(base: dict[str, Any], head: dict[str, Any], top: int = 3) -> dict[str, Any]:
    """The units that account for the time ``head`` added over ``base``, largest first.

    Two runs rarely see the machine at the same speed, and a machine 10% slower makes every
    unit 10% slower, which would blame the largest unit. So the machine's factor is taken
    out first: the median over the units (those above 1% of the base) of head/base time,
    which is the machine's factor when the change is in a few units. A unit's added time is
    ``head - factor * base``; ``share`` is its part of all added time; units that got
    faster are left out.
    """
    b = {u["name"]: float(u["ms"]) for u in base.get("units", [])}
    h = {u["name"]: float(u["ms"]) for u in head.get("units", [])}
    base_total = float(base.get("total_ms") or sum(b.values()))
    ratios = [h[n] / b[n] for n in b if n in h and b[n] > 0.01 * base_total]
    factor = statistics.median(ratios) if ratios else 1.0
    added = {name: h.get(name, 0.0) - factor * b.get(name, 0.0) for name in set(b) | set(h)}
    positive = sum(v for v in added.values() if v > 0)
    ranked = [{"name": name, "added_ms": round(delta, 4), "share": round(delta / positive, 3),
               "base_ms": round(b.get(name, 0.0), 4), "head_ms": round(h.get(name, 0.0), 4)}
              for name, delta in sorted(added.items(), key=lambda kv: -kv[1]) if delta > 0][:top]
    return {"added_ms": round(positive, 4), "machine_factor": round(factor, 4), "units": ranked}


def format_blame(result: dict[str, Any]) -> str:
    """One line: ``layer3.0 +1.20 ms (84%), layer3.1 +0.10 ms (7%)``."""
    parts = []
    for unit in result.get("units", []):
        share = f" ({unit['share']:.0%})" if unit.get("share") is not None else ""
        parts.append(f"{unit['name']} +{unit['added_ms']:.2f} ms{share}")
    return ", ".join(parts) or "no unit added time"
