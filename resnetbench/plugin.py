"""pytest hooks, options and fixtures: ``pytest --matrix matrix.yaml``.

Without ``--matrix`` this plugin only registers its markers and stays out of the way.
With it, the suite in ``resnetbench/suite/`` is collected, ``case`` is parametrized
from the matrix (session scope, so the size, accuracy and latency tests of one case
run together and share one build), and every finished test updates the results file
atomically.

Under pytest-xdist (``-n 2``) the controller owns the results file: each worker sends
the case records and claims its tests changed on the test report itself
(``report.resnetbench``), and the controller writes them as they arrive. A case's tests
stay on one worker (the default ``--dist load`` becomes ``session.scheduling.CaseScheduling``) so they
share one build; the machine lock in ``quiet.py`` keeps every latency timing alone.
``--isolate`` is ``-n 1`` with ``isolation.py``'s limits: a crashing case costs only itself.

The state of a run lives in ``resnetbench.session``, one class per role: ``RunState`` (serial),
``WorkerState`` and ``ControllerState``.

Every finished test is also appended to the journal (``journal.py``); ``--resume``
runs only the tests a killed run had not finished.
"""

from __future__ import annotations

import datetime as dt
import fnmatch
from pathlib import Path
from typing import Any

import pytest

from resnetbench import journal as journal_io
from resnetbench import results as results_io
from resnetbench.config import ConfigError
from resnetbench.records import LatencyRecord
from resnetbench.session import TEST_KINDS
from resnetbench.session.controller import ControllerState
from resnetbench.session.replicas import replicate_latency
from resnetbench.session.state import RunState
from resnetbench.session.worker import WorkerState

SUITE = Path(__file__).parent / "suite" / "test_resnets.py"
MARKERS = {
    "size": "model-size formula vs real artifact checks",
    "accuracy": "outputs and task accuracy against a reference",
    "latency": "latency recorded with pytest-benchmark",
    "claims": "the guide's claims checked against measurements",
    "gpu": "needs a CUDA device",
    "deployment": "cold start and memory in fresh processes (when the matrix sets deployment:)",
    "scenarios": "MLPerf LoadGen's scenarios and Server capacity (when the matrix sets scenarios:)",
}


STATE = pytest.StashKey[RunState]()


def pytest_addhooks(pluginmanager: pytest.PytestPluginManager) -> None:
    from resnetbench import hookspecs

    pluginmanager.add_hookspecs(hookspecs)


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("resnetbench", "ResNet benchmark matrix")
    group.addoption("--matrix", metavar="PATH", help="run the resnetbench suite on this matrix file")
    group.addoption("--results", metavar="PATH", default="reports/results.json",
                    help="results JSON (default: reports/results.json)")
    group.addoption("--report", metavar="PATH", default=None,
                    help="write the HTML comparison report here at the end (e.g. reports/report.html)")
    group.addoption("--summary", metavar="PATH", default=None,
                    help="write a Markdown summary here (e.g. $GITHUB_STEP_SUMMARY)")
    group.addoption("--baseline", metavar="PATH", default=None,
                    help="gate against this results file: the run fails on a regression")
    group.addoption("--shard", metavar="K/N", default=None,
                    help="run only shard K of N (1-based), balanced by expected cost and keyed by case id")
    # pytest itself owns --durations (the slowest tests); pytest-split names this --durations-path.
    group.addoption("--durations-path", metavar="FILE", default=None, dest="shard_durations",
                    help="a previous results file: --shard balances on its measured case durations")
    group.addoption("--fresh-outputs", action="store_true", default=False,
                    help="run every artifact on the accuracy inputs even when its outputs are cached")
    group.addoption("--cache-dir", metavar="PATH", default=None,
                    help="artifact cache (default: $RESNETBENCH_CACHE or .resnetbench-cache)")
    group.addoption("--isolate", action="store_true", default=False,
                    help="run cases in a pytest-xdist worker (-n 1 unless -n is given) that is replaced when a "
                         "case crashes, hangs or passes the matrix's limits: only that case errors")
    group.addoption("--latency-replica", action="store_true", default=False,
                    help="internal: this run re-times another run's latency cases (latency.processes); it "
                         "starts no replicas of its own")
    group.addoption("--resume", action="store_true", default=False,
                    help="continue a killed run: skip every test its journal (<results>.jsonl) has finished")


@pytest.hookimpl(tryfirst=True)
def pytest_cmdline_main(config: pytest.Config) -> None:
    """``--isolate``: set up xdist's options before xdist reads them."""
    if not config.getoption("isolate", False) or hasattr(config, "workerinput"):
        return  # (a worker inherits --isolate; xdist has already turned distribution off there)
    if not config.pluginmanager.hasplugin("xdist"):
        raise pytest.UsageError("--isolate needs pytest-xdist: pip install pytest-xdist (and do not pass -p no:xdist)")
    if not config.option.numprocesses:
        config.option.numprocesses = 1
        config.option.tx = ["popen"]
    if config.option.dist == "no":
        config.option.dist = "load"
    if config.option.maxworkerrestart is None:
        config.option.maxworkerrestart = "1000"  # each crash costs only its case; xdist's default stops at 4


def parse_shard(text: str) -> tuple[int, int]:
    """``'2/4'`` -> (2, 4); raises UsageError on anything else."""
    from resnetbench.shard import parse_shard as parse

    try:
        return parse(text)
    except ValueError as exc:
        raise pytest.UsageError(f"--{exc}") from None


def pytest_configure(config: pytest.Config) -> None:
    for name, text in MARKERS.items():
        config.addinivalue_line("markers", f"{name}: {text}")
    matrix = config.getoption("matrix")
    if not matrix:
        return
    from resnetbench.cache import ArtifactCache, default_cache_dir
    from resnetbench.config import load_config
    from resnetbench.environment import default_threads
    from resnetbench.matrix import expand

    try:
        cfg = load_config(matrix)
        cases = expand(cfg)
    except ConfigError as exc:
        raise pytest.UsageError(str(exc)) from None
    for option in ("results", "report", "summary"):  # refused before hours of work, not after
        if config.getoption(option):
            try:
                results_io.check_output(config.getoption(option), f"--{option}")
            except results_io.ResultsError as exc:
                raise pytest.UsageError(str(exc)) from None
    all_ids = [c.id for c in cases]
    shard = config.getoption("shard")
    k = n = 0
    if shard:
        from resnetbench.shard import durations_from, shard_cases

        k, n = parse_shard(shard)
        durations = None
        if config.getoption("shard_durations"):
            try:
                durations = durations_from(results_io.load(config.getoption("shard_durations")))
            except results_io.ResultsError as exc:
                raise pytest.UsageError(f"--durations-path: {exc}") from None
        cases = shard_cases(cases, k, n, cfg.input_size, durations, claims=cfg.claims)
    cache_dir = Path(config.getoption("cache_dir") or cfg.cache.dir or default_cache_dir())
    max_gb = cfg.cache.max_gb
    # The role decides the state's class: a pytest-xdist worker, the controller of workers, or a serial run.
    if hasattr(config, "workerinput"):
        role: type[RunState] = WorkerState
    elif config.getoption("dist", "no") != "no" and config.getoption("tx"):
        role = ControllerState
    else:
        role = RunState
    state = role(
        config=cfg,
        cases=cases,
        results_path=Path(config.getoption("results")),
        threads=cfg.threads or default_threads(),
        cache=ArtifactCache(cache_dir, int(max_gb * 1e9) if max_gb else None),
        started=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        shard=(k, n) if shard else None,
        fresh_outputs=config.getoption("fresh_outputs"),
        matrix_case_ids=all_ids if shard else [],
        replica=bool(config.getoption("latency_replica")),
    )
    baseline_path = config.getoption("baseline")
    if baseline_path:
        try:
            state.baseline = results_io.load(baseline_path)
        except results_io.ResultsError as exc:
            raise pytest.UsageError(f"--baseline: {exc}") from None
    if isinstance(state, WorkerState):
        state.take_resumed(config.workerinput["resnetbench_resumed"])  # type: ignore[attr-defined]
    elif isinstance(state, ControllerState):
        import tempfile

        from resnetbench.session.controller import Controller

        state.isolation_dir = Path(tempfile.mkdtemp(prefix="resnetbench-isolation-"))
        config.pluginmanager.register(Controller(state, config), "resnetbench-controller")
    config.stash[STATE] = state
    # Collect the packaged suite instead of the project's tests (unless paths were given).
    if config.args_source != pytest.Config.ArgsSource.ARGS:
        config.args[:] = [str(SUITE)]
    elif str(SUITE) not in config.args:
        config.args.append(str(SUITE))


@pytest.hookimpl(tryfirst=True)  # before xdist starts workers: the calibration runs alone
def pytest_sessionstart(session: pytest.Session) -> None:
    state = session.config.stash.get(STATE, None)
    if state is None:
        return
    from resnetbench.environment import calibration_kernel, fingerprint, set_threads

    set_threads(state.threads)
    if state.role == "worker":
        from resnetbench.isolation import WorkerGuard

        workerinput = session.config.workerinput  # type: ignore[attr-defined]
        state.environment = workerinput["resnetbench_environment"]
        state.guard = WorkerGuard(Path(workerinput["resnetbench_isolation"]), workerinput["workerid"])
        return
    state.environment = {
        "fingerprint": fingerprint(state.threads),
        "threads": state.threads,
        "calibration": calibration_kernel(),
        # each arithmetic's roof (roof.py), measured once per machine and kept in the cache
        "roofs": machine_roofs(state.cache, state.threads),
        "xdist_workers": len(session.config.getoption("tx") or []) if state.role == "controller" else None,
    }
    state.environment["peak_gflops"] = state.environment["roofs"]["fp32"]["gflops"]
    _open_journal(session.config, state)


def machine_roofs(cache: Any, threads: int) -> dict[str, Any]:
    """``roof.machine_roofs`` (~7 s of kernels and a clock loop) once per machine, threads and
    libraries: a cache entry keyed by the fingerprint, so each run does not pay it again."""
    from resnetbench import quiet, roof
    from resnetbench.build import code_version
    from resnetbench.environment import fingerprint

    description = {"fingerprint": fingerprint(threads)["hash"], "threads": threads,
                   "code": code_version("resnetbench.roof")}

    def measure(out: Path) -> dict[str, Any]:
        return {"files": [], "roofs": roof.machine_roofs(threads)}

    with quiet.exclusive(cache.root):  # kernels timed beside another run's work would read low
        _, meta = cache.get_or_build("roofs", f"threads{threads}", description, measure)
    return dict(meta["roofs"])


def _open_journal(config: pytest.Config, state: RunState) -> None:
    """Start the journal, or with ``--resume`` take the finished tests from it and go on."""
    path = journal_io.journal_path(state.results_path)
    shard = f"{state.shard[0]}/{state.shard[1]}" if state.shard else None
    header = {"matrix": journal_io.matrix_digest(state.config.path, shard),
              "fingerprint": state.environment["fingerprint"]["hash"], "started": state.started}
    resume = bool(config.getoption("resume"))
    if resume:
        try:
            resumed = journal_io.read(path)
            journal_io.check_resumable(resumed, path, header)
        except journal_io.JournalError as exc:
            raise pytest.UsageError(f"--resume: {exc}") from None
        import warnings

        for text in resumed.warnings:
            warnings.warn(text, stacklevel=1)
        state.adopt(resumed.records, resumed.claims, state.journaled)
        state.resumed = {t for t in resumed.finished_tests() if t[0] in state.records} | {
            ("claim", c) for c in resumed.claims}
        state.started = resumed.header.get("started", state.started)
    state.journal = journal_io.Journal(path, header, resume)


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node: Any) -> None:
    """xdist controller: workers reuse its environment instead of calibrating beside each other."""
    state = node.config.stash.get(STATE, None)
    if state is not None:
        node.workerinput["resnetbench_environment"] = state.environment
        node.workerinput["resnetbench_resumed"] = {
            "tests": sorted(state.resumed), "claims": state.claims if state.resumed else {},
            "records": {k: r.to_dict() for k, r in state.records.items()} if state.resumed else {}}
        node.workerinput["resnetbench_isolation"] = str(state.isolation_dir)



@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """xdist's default ``--dist load`` would scatter a case's tests over workers, each building it."""
    if config.stash.get(STATE, None) is None or config.getoption("dist") != "load":
        return None
    from resnetbench.session.scheduling import CaseScheduling

    return CaseScheduling(config, log)


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    state = metafunc.config.stash.get(STATE, None)
    if state is None:
        return
    if "case" in metafunc.fixturenames:
        metafunc.parametrize("case", state.cases, ids=[c.id for c in state.cases], scope="session")
    if "claim" in metafunc.fixturenames:
        from resnetbench.claims import CLAIMS

        claims = list(CLAIMS) if state.runs_claims else []
        metafunc.parametrize("claim", claims, ids=claims)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    state = config.stash.get(STATE, None)
    if state is None:
        return
    _mark_gpu_cases(items)
    why: dict[str, list[pytest.Item]] = {
        "finished before the run was killed (--resume)": [i for i in items if _test_key(i) in state.resumed]}
    if not state.runs_claims:
        # `claims: false` in the matrix, or a shard other than the first: the claim test is not
        # a skipped test, it is not there.
        why["test_claim: " + ("the matrix sets claims: false" if not state.config.claims else
                              "the claims run in shard 1 only")] = [
            i for i in items if getattr(i, "originalname", "") == "test_claim"]
    if state.config.deployment is None:
        # Without `deployment:` in the matrix the test is not there (not a skipped test per case).
        why["test_deployment: the matrix has no deployment: section"] = [
            i for i in items if getattr(i, "originalname", "") == "test_deployment"]
    if state.config.scenarios is None:
        why["test_scenarios: the matrix has no scenarios: section"] = [
            i for i in items if getattr(i, "originalname", "") == "test_scenarios"]
    elif state.config.scenarios.cases:
        patterns = state.config.scenarios.cases
        why[f"test_scenarios: the case matches none of scenarios.cases ({', '.join(patterns)})"] = [
            i for i in items if (key := _test_key(i)) is not None and key[1] == "scenarios"
            and not any(fnmatch.fnmatchcase(key[0], p) for p in patterns)]
    dropped = [i for group in why.values() for i in group]
    state.memo["deselected"] = {reason: len(group) for reason, group in why.items() if group}
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = [i for i in items if i not in dropped]
    _start_progress(config, state, items)


def pytest_report_collectionfinish(config: pytest.Config, items: list[pytest.Item]) -> list[str]:
    """Say why tests were deselected (pytest's header only counts them)."""
    state = config.stash.get(STATE, None)
    if state is None or state.role == "worker":
        return []
    return [f"resnetbench: {count} deselected: {reason}" for reason, count in state.memo.get("deselected", {}).items()]


def _start_progress(config: pytest.Config, state: RunState, items: list[pytest.Item]) -> None:
    """Phase lines with an estimate of the time left, for a serial run that prints (not ``-qq``)."""
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    if state.role != "serial" or state.replica or reporter is None or config.get_verbosity() < -1:
        return
    from resnetbench.progress import Progress
    from resnetbench.shard import expected_costs

    selected = {getattr(getattr(i, "callspec", None), "params", {}).get("case") for i in items}
    cases = [c for c in state.cases if c in selected]
    capture = config.pluginmanager.get_plugin("capturemanager")

    def write(line: str) -> None:
        # Lines come while a test runs, when pytest captures the output: write past the capture.
        if capture is None:
            reporter.write_line(line)
            return
        with capture.global_and_fixture_disabled():
            reporter.write_line(line)

    state.progress = Progress(write, expected_costs(cases, state.config.input_size))


def _mark_gpu_cases(items: list[pytest.Item]) -> None:
    """The ``gpu`` marker on every test of a case whose backend runs on a CUDA device (``-m gpu``)."""
    from resnetbench.backends import get_backend

    for item in items:
        case: Any = getattr(getattr(item, "callspec", None), "params", {}).get("case")
        if hasattr(case, "backend") and get_backend(case.backend).device != "cpu":
            item.add_marker(pytest.mark.gpu)


def _test_key(item: pytest.Item) -> tuple[str, str] | None:
    """(case id, test kind) of a case's test, ("claim", id) of a claim test; the journal's unit."""
    params = getattr(getattr(item, "callspec", None), "params", {})
    kind = TEST_KINDS.get(getattr(item, "originalname", ""))
    if kind is not None and hasattr(params.get("case"), "id"):
        return params["case"].id, kind
    if getattr(item, "originalname", "") == "test_claim" and "claim" in params:
        return "claim", params["claim"]
    return None


@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None) -> Any:
    """Under xdist: arm the worker's watchdog with this test's limits (isolation.py)."""
    state = item.config.stash.get(STATE, None)
    guard = state.guard if state is not None else None
    if guard is None:
        return (yield)
    from resnetbench.isolation import limits_for

    guard.arm(item.nodeid, *limits_for(state.config.limits))  # type: ignore[union-attr]
    try:
        return (yield)
    finally:
        guard.disarm()


@pytest.fixture(scope="session")
def run_state(request: pytest.FixtureRequest) -> RunState:
    """The session's RunState (only with --matrix)."""
    state = request.config.stash.get(STATE, None)
    if state is None:
        pytest.skip("the resnetbench suite runs with --matrix PATH")
    return state


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    report = yield
    state = item.config.stash.get(STATE, None)
    if state is not None:
        _update_record(item, report, state)
        if isinstance(state, WorkerState):
            report.resnetbench = state.changes()  # type: ignore[attr-defined]  # travels to the controller
    return report


def _update_record(item: pytest.Item, report: pytest.TestReport, state: RunState) -> None:
    callspec = getattr(item, "callspec", None)
    if callspec is None:
        return
    kind = TEST_KINDS.get(getattr(item, "originalname", ""))
    if kind is None:
        return
    case = callspec.params.get("case")
    if not hasattr(case, "id"):  # absent, or pytest's NOTSET for a shard with no cases
        return
    rec = state.record(case)
    rec.duration_s = (rec.duration_s or 0.0) + report.duration
    tests = rec.tests = rec.tests if rec.tests is not None else {}
    outcome = _outcome(report)
    previous = tests.get(kind)
    if report.when == "call" or outcome in ("skipped", "error", "failed") or previous is None:
        if not (report.when == "teardown" and outcome == "passed"):
            tests[kind] = outcome
    if outcome != "passed" and not rec.reason:
        rec.reason = _reason(report)
    if report.when == "teardown" or outcome != "passed":
        state.write()


def _outcome(report: pytest.TestReport) -> str:
    if report.skipped:
        return "skipped"
    if report.failed:
        return "failed" if report.when == "call" else "error"
    return "passed"


def _reason(report: pytest.TestReport) -> str:
    if report.skipped and isinstance(report.longrepr, tuple):
        return str(report.longrepr[2]).removeprefix("Skipped: ")
    crash = getattr(report.longrepr, "reprcrash", None)
    if crash is not None:
        return str(crash.message).splitlines()[0][:500]
    return str(report.longrepr)[:500]


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    state = session.config.stash.get(STATE, None)
    if state is not None and state.guard is not None:
        state.guard.close()
    if state is None or state.role == "worker":
        return
    if exitstatus == pytest.ExitCode.NO_TESTS_COLLECTED and state.resumed:
        session.exitstatus = pytest.ExitCode.OK  # --resume of a run that had finished everything
    if state.isolation_dir is not None:
        import shutil

        shutil.rmtree(state.isolation_dir, ignore_errors=True)
    from resnetbench.environment import calibration_kernel
    from resnetbench.measure.stability import recheck_run

    if not state.replica:
        replicate_latency(state, session.config.invocation_params.args, session.config.invocation_params.dir)
    if state.environment:
        state.environment["calibration_end"] = calibration_kernel()
    latencies = {case_id: r.latency.to_dict() for case_id, r in state.records.items() if r.latency is not None}
    marked = {id(lat) for lat in recheck_run(list(latencies.values()))}
    for case_id, lat in latencies.items():
        if id(lat) in marked:
            state.records[case_id].latency = LatencyRecord.from_dict(lat)
            state.records[case_id].note(f"latency figures taken on a disturbed machine: "
                                        f"{lat['stability']['machine']['reasons'][-1]}")
    state.write()
    if state.journal is not None:
        state.journal.close()
    data = state.results()
    comparison = None
    if state.baseline is not None:
        from resnetbench.compare import blocking, compare_results, format_table, summary_line

        comparison = compare_results(state.baseline, data, threshold=state.gate_threshold())
        state.memo["gate_table"] = format_table(comparison) + "\n" + summary_line(comparison)
        if blocking(comparison):
            session.exitstatus = pytest.ExitCode.TESTS_FAILED
    report_path = session.config.getoption("report")
    if report_path:
        from resnetbench.report import render_html

        Path(report_path).parent.mkdir(parents=True, exist_ok=True)
        Path(report_path).write_text(render_html(data, comparison=comparison), encoding="utf-8")
    summary_path = session.config.getoption("summary")
    if summary_path:
        from resnetbench.report import render_markdown

        with open(summary_path, "a", encoding="utf-8") as fh:
            fh.write(render_markdown(data, comparison=comparison))


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    state = config.stash.get(STATE, None)
    if state is None:
        return
    counts: dict[str, int] = {}
    for rec in state.records.values():
        counts[rec.outcome] = counts.get(rec.outcome, 0) + 1
    terminalreporter.section("resnetbench")
    terminalreporter.write_line(
        f"{len(state.records)} cases: " + ", ".join(f"{v} {k}" for k, v in sorted(counts.items()))
    )
    terminalreporter.write_line(f"results: {state.results_path}")
    hits, builds = state.cache_counts()
    terminalreporter.write_line(f"cache: {state.cache.root} ({hits} hits, {builds} builds)")
    if "gate_table" in state.memo:
        terminalreporter.section("regression gate")
        terminalreporter.write_line(state.memo["gate_table"])
