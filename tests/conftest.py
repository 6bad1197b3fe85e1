"""How the suite is spread over pytest-xdist's two workers (setup.cfg: ``-n 2``).

A test file's tests run on one worker, so its module fixtures are built once, except in the
files of ``SPLIT_BY_PARAMETER``, whose parametrized tests go out by their first parameter (long
cases that stand alone). The groups are handed out longest first, by the seconds in
``tests/durations.json``, so that the run does not end with one worker alone on a long file; a
test missing there counts 0 s. Refresh the file after adding long tests:
``python -m pytest --store-durations tests/durations.json``. (xdist's ``--dist loadgroup`` is
not used: under pytest 9.2 its ``xdist_group`` marks do nothing, as it renames
``item._nodeid``, which pytest no longer reads, and every test then goes out alone.)

TensorFlow's graph optimizer (Grappler) is off in the test processes: it rewrites a graph
without changing what it computes, and on a small model's first ``fit`` step it is most of the
time (the test-size mamba4rec's four ``fit`` steps: 17 s with it, 7 s without, measured beside
a running suite). What the suite runs in child processes (the CLIs, the export checks with TF
Serving's loader) keeps it; ``MDAF_TEST_GRAPPLER=1`` turns it on here too.
"""

import contextlib
import json
import os
from pathlib import Path

import pytest

DURATIONS = Path(__file__).with_name("durations.json")
SPLIT_BY_PARAMETER = ("tests/test_precision.py", "tests/models/test_declared_features.py")


def pytest_addoption(parser):
    parser.addoption("--store-durations", metavar="PATH", default=None,
                     help="write each test's seconds (setup + call + teardown) to PATH")


def group_of(nodeid: str) -> str:
    """The group ``nodeid`` runs in: its file, or its file and first parameter."""
    path, _, rest = nodeid.partition("::")
    if path in SPLIT_BY_PARAMETER and "[" in rest:
        return f"{path}[{rest.split('[', 1)[1].split('-')[0].rstrip(']')}]"
    return path


def recorded_seconds(path: Path = DURATIONS) -> dict[str, float]:
    return json.loads(path.read_text()) if path.exists() else {}


def longest_groups_first(items, seconds: dict[str, float]) -> list:
    """``items`` with the groups in decreasing total seconds, each group's tests in their
    collected order."""
    totals: dict[str, float] = {}
    for item in items:
        group = group_of(item.nodeid)
        totals[group] = totals.get(group, 0.0) + seconds.get(item.nodeid, 0.0)
    return sorted(items, key=lambda item: -totals[group_of(item.nodeid)])


def pytest_xdist_make_scheduler(config, log):
    from xdist.scheduler import LoadScopeScheduling

    class GroupScheduling(LoadScopeScheduling):
        """xdist's scope scheduling with ``group_of`` as the scope, the groups handed out in
        the collected order (``--no-loadscope-reorder``): longest first."""

        def _split_scope(self, nodeid: str) -> str:
            return group_of(nodeid)

    return GroupScheduling(config, log)


class _Ordering:
    """Sorts after pytest's fixture reordering (a trylast hook): the order every worker sends
    to the scheduler."""

    @pytest.hookimpl(trylast=True)
    def pytest_collection_modifyitems(self, config, items):
        items[:] = longest_groups_first(items, recorded_seconds())


class _DurationRecorder:
    def __init__(self, path: Path):
        self.path = path
        self.seconds: dict[str, float] = {}

    def pytest_runtest_logreport(self, report):
        self.seconds[report.nodeid] = self.seconds.get(report.nodeid, 0.0) + report.duration

    def pytest_sessionfinish(self, session):
        from mdaf_tf.files import write_text_atomic

        if self.seconds:
            write_text_atomic(self.path, json.dumps(
                {k: round(v, 2) for k, v in sorted(self.seconds.items())}, indent=0) + "\n")


def _set_graph_optimizer(on: bool) -> None:
    import tensorflow as tf

    tf.config.optimizer.set_experimental_options({"disable_meta_optimizer": not on})


@pytest.fixture
def graph_optimizer():
    """A context in which graphs run through Grappler, as in the CLIs: what a test comparing
    16-bit outputs with an export's (whose loader runs it) computes under."""

    @contextlib.contextmanager
    def enabled():
        _set_graph_optimizer(True)
        try:
            yield
        finally:
            _set_graph_optimizer(os.environ.get("MDAF_TEST_GRAPPLER") == "1")

    return enabled


def pytest_configure(config):
    if os.environ.get("MDAF_TEST_GRAPPLER") != "1":
        _set_graph_optimizer(False)
    config.pluginmanager.register(_Ordering(), "mdaf-ordering")
    path = config.getoption("--store-durations")
    # xdist's workers report to the controller, which records every test once
    if path and not hasattr(config, "workerinput"):
        config.pluginmanager.register(_DurationRecorder(Path(path)), "mdaf-durations")
