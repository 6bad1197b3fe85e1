"""How the suite is spread over pytest-xdist's two workers (setup.cfg: ``--dist loadgroup``).

A test file's tests run on one worker, so its module fixtures are built once, unless a test
names its own ``xdist_group`` (a long parametrized case that stands alone). Groups are handed
out longest first, by the seconds in ``tests/durations.json``, so that the run does not end
with one worker alone on a long file; a test missing there counts 0 s. Refresh the file after
adding long tests: ``python -m pytest --store-durations tests/durations.json``.

TensorFlow's graph optimizer (Grappler) is off in the test processes: it rewrites a graph
without changing what it computes, and on a small model's first ``fit`` step it is most of the
time (mamba4rec at the test size: 17 s with it, 7 s without). What the suite runs in child
processes (the CLIs, the export checks with TF Serving's loader) keeps it;
``MDAF_TEST_GRAPPLER=1`` turns it on here too.
"""

import contextlib
import json
import os
from pathlib import Path

import pytest

DURATIONS = Path(__file__).with_name("durations.json")


def pytest_addoption(parser):
    parser.addoption("--store-durations", metavar="PATH", default=None,
                     help="write each test's seconds (setup + call + teardown) to PATH")


def group_of(item) -> str:
    """The xdist group ``item`` runs in: its own mark's, or its file's."""
    mark = item.get_closest_marker("xdist_group")
    if mark is not None:
        return str(mark.args[0] if mark.args else mark.kwargs.get("name", "default"))
    return item.nodeid.split("::")[0]


def _plain_nodeid(nodeid: str) -> str:
    # loadgroup appends "@group" to the node id of a grouped test
    return nodeid.rsplit("@", 1)[0] if nodeid.rfind("@") > nodeid.rfind("]") else nodeid


def recorded_seconds(path: Path = DURATIONS) -> dict[str, float]:
    return json.loads(path.read_text()) if path.exists() else {}


def longest_groups_first(items, seconds: dict[str, float]) -> list:
    """``items`` with the groups in decreasing total seconds, each group's tests in their
    collected order."""
    totals: dict[str, float] = {}
    for item in items:
        group = group_of(item)
        totals[group] = totals.get(group, 0.0) + seconds.get(_plain_nodeid(item.nodeid), 0.0)
    return sorted(items, key=lambda item: -totals[group_of(item)])


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config, items):
    # before xdist's own hook, which renames a grouped test's node id to "<id>@<group>"
    for item in items:
        if item.get_closest_marker("xdist_group") is None:
            item.add_marker(pytest.mark.xdist_group(group_of(item)))


class _Ordering:
    """Sorts after pytest's fixture reordering (a trylast hook): the order every worker sends
    to the scheduler, which hands out groups in it (with ``--no-loadscope-reorder``)."""

    @pytest.hookimpl(trylast=True)
    def pytest_collection_modifyitems(self, config, items):
        items[:] = longest_groups_first(items, recorded_seconds())


class _DurationRecorder:
    def __init__(self, path: Path):
        self.path = path
        self.seconds: dict[str, float] = {}

    def pytest_runtest_logreport(self, report):
        nodeid = _plain_nodeid(report.nodeid)
        self.seconds[nodeid] = self.seconds.get(nodeid, 0.0) + report.duration

    def pytest_sessionfinish(self, session):
        if not self.seconds:
            return
        temporary = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        temporary.write_text(json.dumps(
            {k: round(v, 2) for k, v in sorted(self.seconds.items())}, indent=0) + "\n")
        temporary.replace(self.path)


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
