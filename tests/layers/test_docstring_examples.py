"""Every public layer's docstring ``Example:`` block runs and prints the shapes it claims.

A block is fenced Python (keras-rs style). Each ``print(...)  # expected`` line in it must
print exactly ``expected``, so an example cannot silently drift from the layer.
"""

import ast
import contextlib
import importlib
import inspect
import io
import re
from pathlib import Path

import pytest

import mdaf_tf.layers

LAYERS_DIR = Path(mdaf_tf.layers.__file__).parent
EXAMPLE = re.compile(r"^Example:\n\n```python\n(.*?)\n```$", re.DOTALL | re.MULTILINE)
PRINT_CLAIM = re.compile(r"^print\(.*\)\s+# (.*)$", re.MULTILINE)


def public_classes_by_module() -> dict[str, list[str]]:
    """Public class names defined at the top level of each public module in mdaf_tf/layers."""
    found = {}
    for path in sorted(LAYERS_DIR.glob("*.py")):
        if path.name.startswith("_"):
            continue
        tree = ast.parse(path.read_text())
        found[path.stem] = [n.name for n in tree.body
                            if isinstance(n, ast.ClassDef) and not n.name.startswith("_")]
    return found


def test_one_public_class_per_module_and_every_one_is_exported():
    by_module = public_classes_by_module()
    assert by_module, "no layer modules found"
    for module, classes in by_module.items():
        assert len(classes) == 1, f"mdaf_tf/layers/{module}.py defines {classes}"
    defined = {classes[0] for classes in by_module.values()}
    assert defined == set(mdaf_tf.layers.__all__)
    for module, (name,) in by_module.items():
        cls = getattr(mdaf_tf.layers, name)
        assert cls is getattr(importlib.import_module(f"mdaf_tf.layers.{module}"), name)


def example_of(obj) -> str:
    match = EXAMPLE.search(inspect.getdoc(obj) or "")
    assert match, f"{obj.__name__}: no 'Example:' block with a ```python fence in its docstring"
    return match.group(1)


def run_example(code: str, name: str) -> None:
    claims = PRINT_CLAIM.findall(code)
    assert claims, f"{name}: the example shows no output (print(...)  # expected)"
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(code, f"<{name} docstring example>", "exec"), {"__name__": "__example__"})
    assert out.getvalue().splitlines() == claims


@pytest.mark.parametrize("name", sorted(mdaf_tf.layers.__all__))
def test_layer_docstring_example_runs(name):
    cls = getattr(mdaf_tf.layers, name)
    code = example_of(cls)
    assert f"from mdaf_tf.layers import {name}" in code  # uses the public import path
    run_example(code, name)


def test_ops_docstring_example_runs():
    import mdaf_tf.ops

    run_example(EXAMPLE.search(inspect.getdoc(mdaf_tf.ops)).group(1), "mdaf_tf.ops")
