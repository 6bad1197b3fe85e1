"""Package structure: no import cycle among mdaf_tf's modules, the public API imports, and the
helpers that must exist once (atomic writes, metadata loading, private TF/Keras APIs) do.

The import graph is built statically from the source (``ast``), so it covers every module and
every import, including function-local ones and those under ``if TYPE_CHECKING:`` (which mirror
the packages' lazy exports), whether or not a test happens to execute them.
"""

from __future__ import annotations

import ast
import importlib
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / "mdaf_tf"
ACCEPTANCE = ("from mdaf_tf.layers import MambaBlock, LinearCrossNetwork, "
              "ExponentialCrossNetwork, GatedFusion")


# ----------------------------------------------------------------------------------------
# The static import graph.


def module_files(root: Path = PACKAGE) -> dict[str, Path]:
    """Dotted module name -> file, for every .py under ``root`` (packages by __init__.py)."""
    modules = {}
    for path in sorted(root.rglob("*.py")):
        parts = list(path.relative_to(root.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        modules[".".join(parts)] = path
    return modules


def _ancestors(name: str) -> list[str]:
    parts = name.split(".")
    return [".".join(parts[:i]) for i in range(1, len(parts))]


def _nearest_module(name: str, modules) -> str | None:
    while name and name not in modules:
        name = name.rpartition(".")[0]
    return name or None


def imported_modules(module: str, path: Path, modules) -> set[str]:
    """The package modules that importing ``module`` may import (anywhere in its source).

    ``import a.b.c`` and ``from a.b.c import x`` name a.b.c; ``from a.b import c`` names a.b.c
    when that is a module, else a.b (even from inside a.b: a layer module taking a name from
    ``mdaf_tf.layers`` depends on that package's ``__init__``). Importing a.b.c also runs the
    ``__init__`` of a and a.b, so those packages count too, except the importer's own parent
    packages (already being imported when it runs)."""
    is_package = path.name == "__init__.py"
    named = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            named.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: from the importer's package, up level - 1
                base = module.split(".") if is_package else module.split(".")[:-1]
                base = base[: len(base) - (node.level - 1)]
                source = ".".join(base + ([node.module] if node.module else []))
            else:
                source = node.module or ""
            for alias in node.names:  # a submodule, else a name from the package itself
                submodule = f"{source}.{alias.name}"
                named.add(submodule if submodule in modules else source)
    own = set(_ancestors(module)) | {module}
    edges = set()
    for name in named:
        target = _nearest_module(name, modules)
        if target is None:
            continue  # not a package module (stdlib, TensorFlow, ...)
        edges.add(target)
        edges.update(p for p in _ancestors(target) if p in modules and p not in own)
    edges.discard(module)
    return edges


def import_graph(root: Path = PACKAGE) -> dict[str, set[str]]:
    modules = module_files(root)
    return {name: imported_modules(name, path, modules) for name, path in modules.items()}


def find_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """One cycle (a path ending where it starts) per strongly connected component that has
    more than one module (Tarjan's algorithm, iterative)."""
    index, low, on_stack, stack, components = {}, {}, set(), [], []
    counter = 0
    for start in sorted(graph):
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = counter
        counter += 1
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in graph:
                    continue
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = set()
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.add(member)
                    if member == node:
                        break
                if len(component) > 1:
                    components.append(component)
    cycles = []
    for component in components:  # shortest way back to the first member, inside the SCC
        first = min(component)
        paths = {first: [first]}
        frontier = [first]
        cycle = None
        while frontier and cycle is None:
            nxt = []
            for node in frontier:
                for child in sorted(graph[node] & component):
                    if child == first:
                        cycle = paths[node] + [first]
                        break
                    if child not in paths:
                        paths[child] = paths[node] + [child]
                        nxt.append(child)
                if cycle:
                    break
            frontier = nxt
        cycles.append(cycle)
    return cycles


def test_cycle_finder_reports_a_cycle():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a", "d"}, "d": set(), "e": {"e2"}, "e2": {"e"}}
    assert sorted(find_cycles(graph)) == [["a", "b", "c", "a"], ["e", "e2", "e"]]
    assert find_cycles({"a": {"b"}, "b": set()}) == []


def test_graph_sees_function_local_submodule_and_package_imports(tmp_path):
    root = tmp_path / "pkg"
    (root / "sub").mkdir(parents=True)
    (root / "__init__.py").write_text("")
    (root / "sub" / "__init__.py").write_text("from pkg.sub.low import VALUE\n")
    (root / "sub" / "low.py").write_text("VALUE = 1\n")
    (root / "top.py").write_text("def f():\n    from pkg.sub import low\n")
    (root / "rel.py").write_text("from .sub import low\nfrom . import top\n")
    (root / "sub" / "bad.py").write_text("from pkg.sub import VALUE\n")
    graph = import_graph(root)
    assert graph["pkg.sub.bad"] == {"pkg.sub"}  # a name re-exported by its own package
    assert graph["pkg.top"] == {"pkg.sub.low", "pkg.sub"}  # local import, plus sub/__init__
    assert graph["pkg.rel"] == {"pkg.sub.low", "pkg.sub", "pkg.top"}
    assert graph["pkg.sub"] == {"pkg.sub.low"}  # not its own parent package
    assert graph["pkg.sub.low"] == set()


def test_no_import_cycle_among_package_modules():
    graph = import_graph()
    # the builder sees the package (a vacuous graph would pass trivially)
    assert "mdaf_tf.export" in graph["mdaf_tf.training.runner"]  # a function-local import
    assert "mdaf_tf.evaluation.exact" in graph["mdaf_tf.training"]  # a lazy (TYPE_CHECKING) one
    cycles = find_cycles(graph)
    assert not cycles, "import cycles in mdaf_tf:\n" + "\n".join(
        "  " + " -> ".join(cycle) for cycle in cycles)


# ----------------------------------------------------------------------------------------
# The public API.


def run_fresh(code: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env=env, cwd=REPO, timeout=300)


def test_public_api_imports_in_a_fresh_process():
    done = run_fresh("\n".join([
        ACCEPTANCE,
        "from mdaf_tf.models import MDAF, StaticOnly, SequenceOnly, BST, Mamba4Rec, DCNv2, "
        "AutoInt, DIN, DNN, MDAFConfig, DNNConfig, MODEL_NAMES, build_model, count_parameters",
        "from mdaf_tf.training import WarmupCosineDecay, build_optimizer, ClickTrainer, "
        "compile_trainer, ExactEvaluation, EpochProgress, GateStatistics, MetricsLogger, "
        "TrainingBackup, SummaryWriter",
        "from mdaf_tf.data import make_dataset",
        "from mdaf_tf.ops import selective_scan",
        "assert callable(selective_scan) and selective_scan.__name__ == 'selective_scan'",
        "print('ok')",
    ]))
    assert done.returncode == 0, done.stderr[-4000:]
    assert done.stdout.strip().splitlines()[-1] == "ok"


def test_lazy_packages_import_no_tensorflow():
    """The command lines import these while parsing arguments; TensorFlow waits for a run."""
    done = run_fresh(
        "import sys\n"
        "import mdaf_tf.models, mdaf_tf.training, mdaf_tf.data.source, mdaf_tf.files\n"
        "from mdaf_tf.models import build_model, make_config, register_model\n"
        "print(sorted(m for m in ('tensorflow', 'keras') if m in sys.modules))\n"
    )
    assert done.returncode == 0, done.stderr[-4000:]
    assert done.stdout.strip().splitlines()[-1] == "[]"


@pytest.mark.parametrize("package", ["layers", "models", "ops", "training"])
def test_every_exported_name_resolves(package):
    module = importlib.import_module(f"mdaf_tf.{package}")
    assert module.__all__ and len(set(module.__all__)) == len(module.__all__)
    for name in module.__all__:
        assert getattr(module, name) is not None, name
        assert name in dir(module)
    with pytest.raises(AttributeError):
        module.no_such_name  # noqa: B018


@pytest.mark.parametrize("package", ["training"])
def test_lazy_exports_match_their_type_checking_imports(package):
    """The static graph sees a lazy export through its TYPE_CHECKING import: keep them equal."""
    module = importlib.import_module(f"mdaf_tf.{package}")
    tree = ast.parse((PACKAGE / package / "__init__.py").read_text())
    guarded = {}
    for node in tree.body:
        if isinstance(node, ast.If) and ast.unparse(node.test) == "TYPE_CHECKING":
            for item in node.body:
                guarded.update({alias.name: item.module for alias in item.names})
    assert guarded == module._LAZY
    for name, source in module._LAZY.items():
        assert getattr(module, name) is getattr(importlib.import_module(source), name)


def test_models_export_every_registered_class():
    import mdaf_tf.models as models

    for name in models.MODEL_NAMES:
        cls = models.model_class(name)
        assert getattr(models, cls.__name__) is cls and cls.__name__ in dir(models)
        config_class = cls.config_class
        assert getattr(models, config_class.__name__) is config_class
        assert config_class.__module__ == cls.__module__  # declared in the model's own file


# ----------------------------------------------------------------------------------------
# Helpers that live in one place.


def package_sources() -> dict[str, str]:
    return {str(p.relative_to(REPO)): p.read_text() for p in sorted(PACKAGE.rglob("*.py"))}


@pytest.mark.parametrize("function", ["write_json_atomic", "write_text_atomic",
                                      "load_metadata", "metadata_sha256", "tracing_under_xla"])
def test_helper_is_defined_once(function):
    pattern = re.compile(rf"^\s*def _?{function}\(", re.MULTILINE)
    where = [path for path, text in package_sources().items() if pattern.search(text)]
    assert len(where) == 1, f"{function} defined in {where}"


def test_temporary_then_rename_writes_go_through_files_module():
    # Directory renames with their own layout stay beside it (checkpoints, export versions).
    allowed = {"mdaf_tf/files.py", "mdaf_tf/training/checkpoint.py", "mdaf_tf/export.py"}
    users = {path for path, text in package_sources().items() if "os.replace(" in text}
    assert users <= allowed, f"os.replace outside mdaf_tf/files.py: {sorted(users - allowed)}"


def test_private_tensorflow_and_keras_apis_are_isolated():
    private = re.compile(r"tensorflow\.python|keras\.src|\._flatten_layers\(")
    users = {path for path, text in package_sources().items() if private.search(text)}
    assert users == {"mdaf_tf/internal_apis.py"}
