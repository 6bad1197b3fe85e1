"""The layers of the code and the one direction imports take between them, over every module
of ``mdaf_tf``, ``pipelines``, ``benchmarks`` and ``studies`` (the static import graph of
``tests/test_imports.py``: function-local and ``TYPE_CHECKING`` imports included).

    studies -> benchmarks -> cli (train, tune, compare, evaluate, predict)
      -> comparison, tuning -> training -> serving (export, raw rows)
      -> evaluation (prediction passes, calibration, the serving check) -> models -> layers
      -> ops -> base (schema, data, config, metrics, files, precision, progress, ...)
    pipelines -> base

A module may import its own layer and those below it. ``mdaf_tf`` never imports
``pipelines`` (it runs them as commands, ``python -m pipelines.NAME``). The installed wheel is
``mdaf_tf`` and ``pipelines``; the two top-level trees that are not installed sit above it:
``benchmarks`` (the measurements a user reruns) may import the library and the pipelines, and
``studies`` (one-off investigations and their results) may import all of that and
``benchmarks``. Nothing installed imports either, and ``benchmarks`` does not import
``studies``. A module that no layer claims fails the test: a new one is placed here when it is
added.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from test_imports import REPO, imported_modules, module_files

ROOTS = ("mdaf_tf", "pipelines", "benchmarks", "studies")

# Layers from the bottom up; a module belongs to the layer with the longest of its names that
# it equals or lies under (the package root "mdaf_tf" itself only).
LAYERS = (
    ("base", ("mdaf_tf", "mdaf_tf.data",
              "mdaf_tf.config", "mdaf_tf.metrics", "mdaf_tf.files", "mdaf_tf.lazy",
              "mdaf_tf.internal_apis", "mdaf_tf.precision", "mdaf_tf.runtime",
              "mdaf_tf.native", "mdaf_tf.progress")),
    ("ops", ("mdaf_tf.ops",)),
    ("layers", ("mdaf_tf.layers",)),
    ("models", ("mdaf_tf.models",)),
    ("evaluation", ("mdaf_tf.evaluation",)),
    ("serving", ("mdaf_tf.export", "mdaf_tf.raw_rows")),
    ("training", ("mdaf_tf.training", "mdaf_tf.distribute", "mdaf_tf.heuristics")),
    ("tuning", ("mdaf_tf.tuning", "mdaf_tf.comparison")),
    ("cli", ("mdaf_tf.train", "mdaf_tf.tune", "mdaf_tf.compare", "mdaf_tf.evaluate",
             "mdaf_tf.predict", "mdaf_tf.cli_errors", "mdaf_tf.cli_options")),
)
RANK = {name: rank for rank, (name, _) in enumerate(LAYERS)}
# Apart from the stack: what each may import.
PIPELINES_MAY_IMPORT = {"pipelines", "base"}
# The trees outside the wheel, from the top: each may import those after it and everything
# installed; nothing imports one before it.
NOT_INSTALLED = ("studies", "benchmarks")


def layer_of(module: str) -> str | None:
    top = module.split(".")[0]
    if top == "pipelines" or top in NOT_INSTALLED:
        return top
    matches = [(len(prefix), name) for name, prefixes in LAYERS for prefix in prefixes
               if module == prefix or (prefix != "mdaf_tf" and module.startswith(prefix + "."))]
    return max(matches)[1] if matches else None


def project_graph(repo: Path = REPO, roots=ROOTS) -> dict[str, set[str]]:
    """Module -> the project modules it imports, over ``roots`` together (so that an import
    of one package by another is an edge)."""
    modules = {}
    for root in roots:
        if (repo / root).is_dir():
            modules.update(module_files(repo / root))
    return {name: imported_modules(name, path, modules) for name, path in modules.items()}


def allowed(importer: str, imported: str) -> bool:
    if imported in NOT_INSTALLED:
        return (importer in NOT_INSTALLED
                and NOT_INSTALLED.index(importer) <= NOT_INSTALLED.index(imported))
    if importer in NOT_INSTALLED:
        return True
    if importer == "pipelines":
        return imported in PIPELINES_MAY_IMPORT
    if imported == "pipelines":
        return False
    return RANK[imported] <= RANK[importer]


def violations(graph: dict[str, set[str]]) -> list[str]:
    """``importer -> imported (layer -> layer)`` for every import against the layers, and
    ``module: in no layer`` for a module no layer claims."""
    found = [f"{m}: in no layer" for m in sorted(graph) if layer_of(m) is None]
    for module in sorted(graph):
        for target in sorted(graph[module]):
            a, b = layer_of(module), layer_of(target)
            if a and b and not allowed(a, b):
                found.append(f"{module} -> {target} ({a} -> {b})")
    return found


def test_every_module_of_every_package_keeps_to_its_layer():
    graph = project_graph()
    assert {m.split(".")[0] for m in graph} == set(ROOTS)
    assert len(graph) > 120  # the builder sees the project
    assert "mdaf_tf.data.schema" in graph["pipelines.output"]  # an edge between the packages
    problems = violations(graph)
    assert not problems, "imports against the layers:\n  " + "\n  ".join(problems)


def _write(root: Path, relative: str, text: str = "") -> None:
    path = root / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    for parent in list(path.parents)[: len(Path(relative).parts) - 1]:
        (parent / "__init__.py").touch()
    path.write_text(text)


@pytest.mark.parametrize("relative, text, expected", [
    ("mdaf_tf/layers/planted.py", "from mdaf_tf.training import runner\n",
     "mdaf_tf.layers.planted -> mdaf_tf.training.runner (layers -> training)"),
    ("mdaf_tf/models/planted.py", "def f():\n    from pipelines import synthetic\n",
     "mdaf_tf.models.planted -> pipelines.synthetic (models -> pipelines)"),
    ("pipelines/planted.py", "from mdaf_tf.models import mdaf\n",
     "pipelines.planted -> mdaf_tf.models.mdaf (pipelines -> models)"),
    ("mdaf_tf/training/planted.py", "import benchmarks.common\n",
     "mdaf_tf.training.planted -> benchmarks.common (training -> benchmarks)"),
    ("mdaf_tf/models/planted.py", "from studies.probe import probe\n",
     "mdaf_tf.models.planted -> studies.probe.probe (models -> studies)"),
    ("pipelines/planted.py", "def f():\n    import studies.probe.probe\n",
     "pipelines.planted -> studies.probe.probe (pipelines -> studies)"),
    ("benchmarks/planted.py", "from studies.probe import probe\n",
     "benchmarks.planted -> studies.probe.probe (benchmarks -> studies)"),
    ("mdaf_tf/unplaced.py", "", "mdaf_tf.unplaced: in no layer"),
])
def test_a_planted_violation_is_reported(tmp_path, relative, text, expected):
    for module in ("mdaf_tf/training/runner.py", "mdaf_tf/models/mdaf.py",
                   "mdaf_tf/layers/ok.py", "pipelines/synthetic.py", "benchmarks/common.py"):
        _write(tmp_path, module)
    # The trees outside the wheel: studies import benchmarks and the rest, benchmarks the rest.
    _write(tmp_path, "studies/probe/probe.py", "import benchmarks.common\n"
           "from mdaf_tf.training import runner\nfrom pipelines import synthetic\n")
    _write(tmp_path, "benchmarks/uses.py", "from mdaf_tf.models import mdaf\n"
           "from pipelines import synthetic\nimport benchmarks.common\n")
    assert violations(project_graph(tmp_path)) == []
    _write(tmp_path, relative, text)
    found = violations(project_graph(tmp_path))
    planted = relative.removesuffix(".py").replace("/", ".")
    assert expected in found and all(line.startswith(planted) for line in found), found


def test_the_wheel_holds_the_library_and_no_study_or_result():
    """What setup.cfg packages (its find: includes and package data) is mdaf_tf and
    pipelines: Python modules and the two native sources, no benchmark, study or result."""
    import configparser
    import subprocess

    from setuptools import find_packages

    config = configparser.ConfigParser()
    config.read(REPO / "setup.cfg")
    include = config["options.packages.find"]["include"].split()
    packages = find_packages(where=str(REPO), include=include)
    assert {p.split(".")[0] for p in packages} == {"mdaf_tf", "pipelines"}
    shipped = subprocess.run(["git", "ls-files", "mdaf_tf", "pipelines"], cwd=REPO,
                             capture_output=True, text=True, check=True).stdout.split()
    kinds = {Path(p).suffix for p in shipped}
    assert kinds == {".py", ".cc", ".c"}, kinds
    assert not [p for p in shipped if "results" in p or "flops" in p]
