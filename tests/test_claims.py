"""The guide's cheap claims, measured on real models against independently known values."""

from __future__ import annotations

import pytest

from resnetbench.cache import ArtifactCache
from resnetbench.claims import CLAIMS, EXPECTED
from resnetbench.cli import main


@pytest.mark.parametrize("claim", ["C3", "C4", "C5", "C8"])
def test_claim_measurements_and_verdicts(claim, tmp_path):
    result = CLAIMS[claim](ArtifactCache(tmp_path))
    for what, measured, known in result.checks:
        assert measured == known, what
    assert result.verdict == EXPECTED[claim]


def test_dynamic_quantization_touches_only_fc(tmp_path):
    result = CLAIMS["C3"](ArtifactCache(tmp_path))
    assert result.details["quantized_layers"][0] == "fc"
    assert 0.93 < result.details["ratio"] < 0.95


def test_every_claim_has_an_expected_verdict():
    assert set(CLAIMS) == set(EXPECTED) == {f"C{i}" for i in range(1, 10)}
    assert {c for c, v in EXPECTED.items() if v == "refuted"} == {"C3", "C4", "C6", "C8"}


def test_claims_cli_prints_the_table(capsys, tmp_path):
    assert main(["claims", "--only", "C4", "C8", "--cache-dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "C4  REFUTED" in out and "25,557,032 -> 25,557,032" in out
    assert "C8  REFUTED" in out and "+26,496" in out
    assert main(["claims", "--only", "C42"]) == 2


def test_sizes_cli(capsys):
    assert main(["sizes"]) == 0
    out = capsys.readouterr().out
    assert "resnet50   int8    25,557,032    25,557,032     25.56     24.37" in out
