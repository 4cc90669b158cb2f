"""The suite ``pytest --matrix`` runs: size, accuracy and latency of each case, and the guide's claims.

The ``case`` parameter is session-scoped, so the three tests of one case run together
and share one build (``built``); the next case's build replaces it.
"""

from __future__ import annotations

from typing import Any

import pytest

from resnetbench import quiet


def _skip_reason(case: Any) -> str | None:
    from resnetbench.backends import get_backend
    from resnetbench.compress import unsupported_dtype

    return unsupported_dtype(case.compression, case.dtype) or get_backend(case.backend).unsupported(case)


def _skip_unless_runnable(case: Any, state: Any) -> None:
    """Skip a test that executes the artifact where it would be pathologically slow or cannot run."""
    from resnetbench.backends import get_backend

    backend = get_backend(case.backend)
    reason = backend.slow_reason(case, state.config.allow_slow) or backend.cannot_run_here(case)
    if reason:
        pytest.skip(reason)


@pytest.fixture(scope="session")
def built(case: Any, run_state: Any, request: pytest.FixtureRequest) -> Any:
    """The case's model, artifact and runner, made once (or taken from the cache).

    After the case's tests, plugins may add to its record (``pytest_resnetbench_case_record``).
    """
    reason = _skip_reason(case)
    record = run_state.record(case)
    if reason:
        record.reason = reason
        pytest.skip(reason)
    from resnetbench.build import build_case

    with quiet.shared(run_state.cache.root) as hold:
        # Recipes are timed inside the build (tuning.py): alone, like every timing. A run that only
        # sizes the case (-m size) never executes the artifact, so it has no recipe to choose.
        b = build_case(run_state.config, case, run_state.cache, run_state.threads,
                       tune=(tune := _executes_artifact(case, request.session)), timing_lock=hold.exclusive,
                       phase=lambda name: run_state.phase(case, name))
    if not tune:
        b.tuning = {**b.tuning, "how": "not chosen: this run only sizes the case (no selected test executes it)"}
    record.conversion = b.conversion
    record.compression_info = b.compression_info
    record.artifact = {"dir": str(b.entry), "kind": type(b).__name__, "runtime": b.meta.get("runtime", {}),
                       "tuning": b.tuning}
    record.notes = b.notes
    yield b
    request.config.hook.pytest_resnetbench_case_record(case=case, record=record, built=b)
    run_state.write()


def _executes_artifact(case: Any, session: pytest.Session) -> bool:
    """Whether a selected test of ``case`` other than ``test_size`` runs in this session."""
    for item in session.items:
        callspec = getattr(item, "callspec", None)
        other = getattr(callspec, "params", {}).get("case")
        if getattr(other, "id", None) == case.id and getattr(item, "originalname", None) != "test_size":
            return True
    return False


@pytest.mark.size
def test_size(case: Any, built: Any, run_state: Any) -> None:
    from resnetbench.measure.size_case import measure_size

    run_state.phase(case, "size")
    _record(run_state, case, "size", measure_size(case, built))


@pytest.mark.accuracy
def test_accuracy(case: Any, built: Any, run_state: Any) -> None:
    from resnetbench.measure.accuracy_case import measure_accuracy

    _skip_unless_runnable(case, run_state)
    run_state.phase(case, "accuracy")
    _record(run_state, case, "accuracy", measure_accuracy(case, built, run_state))


@pytest.mark.latency
def test_latency(case: Any, built: Any, run_state: Any, benchmark: Any) -> None:
    from resnetbench.measure.latency_case import measure_latency

    _skip_unless_runnable(case, run_state)
    run_state.phase(case, "timing")
    benchmark.extra_info.update({"case": case.id, "threads": run_state.threads})
    _record(run_state, case, "latency", measure_latency(case, built, run_state, benchmark))


def _record(run_state: Any, case: Any, kind: str, measured: Any) -> None:
    """Put a measurement's typed record and notes on the case's record; fail with its reason."""
    record = run_state.record(case)
    setattr(record, kind, measured.record)
    for note in measured.notes:
        record.note(note)
    if measured.failure:
        pytest.fail(measured.failure, pytrace=False)


@pytest.mark.deployment
def test_deployment(case: Any, built: Any, run_state: Any) -> None:
    """Cold start and memory in fresh processes (``measure/deployment.py``), alone on the machine."""
    from resnetbench.measure.deployment import DeploymentError, measure

    _skip_unless_runnable(case, run_state)
    run_state.phase(case, "deployment")
    cfg = run_state.config
    with quiet.exclusive(run_state.cache.root):
        try:
            result = measure(cfg.path, case.id, run_state.cache.root, run_state.threads, built.tuning["recipe"],
                             runs=cfg.deployment.runs)
        except DeploymentError as exc:
            pytest.fail(str(exc), pytrace=False)
    run_state.record(case).deployment = result


@pytest.mark.claims
def test_claim(claim: str, run_state: Any) -> None:
    from resnetbench.claims import CLAIMS

    with quiet.shared(run_state.cache.root):
        result = CLAIMS[claim](run_state.cache)
    run_state.claims[claim] = result.to_dict()
    run_state.write()
    for what, measured, known in result.checks:
        assert measured == known, f"{claim}: {what}: measured {measured}, independently known {known}"
    assert result.verdict == result.expected_verdict, (
        f"{claim}: verdict {result.verdict} but the project expects {result.expected_verdict}: "
        f"stated {result.stated}, measured {result.measured}"
    )


@pytest.mark.scenarios
def test_scenarios(case: Any, built: Any, run_state: Any) -> None:
    """MLPerf LoadGen's scenarios (``measure/scenarios_case.py``), alone on the machine."""
    from resnetbench.measure.scenarios_case import measure_scenarios

    _skip_unless_runnable(case, run_state)
    run_state.phase(case, "scenarios")
    _record(run_state, case, "scenarios", measure_scenarios(case, built, run_state))
