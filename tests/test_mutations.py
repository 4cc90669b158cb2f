"""The mutation catalogue: every kind of damage turns the gate red, an unchanged run stays green."""

from __future__ import annotations

import pytest

from resnetbench.tools import mutations


def test_damaged_matrix_drops_one_case_and_adds_two():
    base = {(e["arch"], e["dtype"], e["backend"]) for e in mutations.MATRIX["matrix"]["include"]}
    damaged = {(e["arch"], e["dtype"], e["backend"]) for e in mutations.damaged_matrix()["matrix"]["include"]}
    assert base - damaged == {("resnet34", "bf16", "eager")}
    assert damaged - base == {("resnet18", "fp32", "torchscript"), ("resnet18", "fp16", "onnxruntime")}
    assert len({d.case for d in mutations.DAMAGES}) == len(mutations.DAMAGES)  # one damage per case


@pytest.mark.slow
def test_every_damage_turns_the_gate_red_and_aa_stays_green(tmp_path, shared_cache):
    result = mutations.run_catalogue(tmp_path, shared_cache)
    table = mutations.format_table(result)
    damages = [r for r in result["rows"] if r["kind"] != "A/A"]
    assert {r["kind"] for r in damages} == {d.kind for d in mutations.DAMAGES}
    assert all(r["red"] for r in damages), table
    aa = [r for r in result["rows"] if r["kind"] == "A/A"]
    assert len(aa) == len(mutations.MATRIX["matrix"]["include"]) and not any(r["red"] for r in aa), table
    assert result["aa_gate_passed"] and not result["collateral"] and result["all_ok"], table
