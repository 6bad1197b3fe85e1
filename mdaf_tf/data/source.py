"""Turn ``--data`` into a dataset directory, running a pipeline into a cache when needed.

* no ``--data``: the synthetic default (``python -m pipelines.synthetic`` with its defaults),
  built once into ``CACHE/synthetic-default-KEY`` (KEY hashes the pipelines' source, their
  defaults included, and the schema version);
* a directory: used as it is (it must hold ``metadata.json``);
* a file: ``.parquet`` or a CSV whose first line is a header with a ``label`` column goes
  through ``pipelines.impressions``; any other CSV is a Taobao UserBehavior log and goes
  through ``pipelines.taobao``. The output is cached in ``CACHE/PIPELINE-STEM-HASH`` where
  HASH covers the file's bytes, the pipeline's arguments, the pipelines' source and the
  schema version, so re-running reuses it and a cache of other pipeline code is rebuilt.

``CACHE`` is ``$MDAF_TF_DATA_CACHE`` or ``data_cache`` in the working directory. Pipelines
write to a temporary directory and rename it, so an interrupted build is rebuilt next time.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

from mdaf_tf.data import DataError, schema

SYNTHETIC_DEFAULT = "synthetic-default"

# Training fields used when --data is omitted (the synthetic default), beneath --config and
# the flags. Five epochs keep the main command within 10 minutes on 2 cores. Batch size and
# warmup come from the size rule (recipe.py: 256 and 1 epoch here); the learning rate stays
# the 3e-3 that README's synthetic figures (main command, compare) were measured with, where
# the rule would give 1e-3 (README, "The size rule").
SYNTHETIC_DEFAULT_TRAIN = {"epochs": 5, "learning_rate": 3e-3}


def describe_preset(*, with_epochs: bool = True) -> str:
    """The synthetic default's training in words, for the commands' --help."""
    words = (f"learning rate {SYNTHETIC_DEFAULT_TRAIN['learning_rate']:g}, batch size and "
             "warmup from the size rule")
    if with_epochs:
        return f"{SYNTHETIC_DEFAULT_TRAIN['epochs']} epochs, {words}"
    return words


def train_preset(data: str | None) -> dict:
    """The training fields ``--data`` implies: the synthetic default's when it is omitted."""
    return dict(SYNTHETIC_DEFAULT_TRAIN) if data is None else {}


def cache_root() -> Path:
    return Path(os.environ.get("MDAF_TF_DATA_CACHE", "data_cache"))


def file_sha256(path: Path, chunk: int = 1 << 22) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def detect_pipeline(path: Path) -> str:
    if path.suffix.lower() == ".parquet":
        return "impressions"
    with open(path, "rb") as f:
        first = f.readline(4096).decode("utf-8", errors="replace").strip().lower()
    columns = [c.strip() for c in first.split(",")]
    return "impressions" if "label" in columns else "taobao"


def _run_pipeline(module: str, args: list[str], log, echo: bool = True) -> None:
    """Run a pipeline command; its progress lines reach standard error as they come."""
    import tempfile

    package_root = str(Path(__file__).resolve().parents[2])
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (package_root, env.get("PYTHONPATH")) if p)
    log(f"building the dataset: python -m {module} {' '.join(args)}")
    errors, last = [], "(no message)"
    with tempfile.TemporaryFile("w+") as out:
        proc = subprocess.Popen([sys.executable, "-m", module, *args], env=env, stdout=out,
                                stderr=subprocess.PIPE, text=True)
        for line in proc.stderr:
            last = line.strip() or last
            if line.startswith("error:"):
                errors.append(line.strip())
            elif echo:
                sys.stderr.write(line)
        proc.wait()
        out.seek(0)
        stdout = out.read()
    if stdout.strip():
        log(stdout.strip().splitlines()[-1])
    if proc.returncode != 0:
        raise DataError(f"python -m {module} failed: {(errors or [last])[-1]}")


def pipelines_key() -> str:
    """A hash of the pipelines' source (``pipelines/``, found without importing it: mdaf_tf
    runs the pipelines as commands) and the schema version: a dataset cached by other
    pipeline code (other defaults, another click model) or of another layout is rebuilt."""
    import importlib.util

    root = Path(importlib.util.find_spec("pipelines").submodule_search_locations[0])
    digest = hashlib.sha256(f"schema {schema.SCHEMA_VERSION}".encode())
    for path in sorted(p for p in root.rglob("*") if p.suffix in (".py", ".c")):
        digest.update(path.relative_to(root).as_posix().encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:12]


def resolve(data: str | None, log=print, echo: bool = True) -> Path:
    """The dataset directory for ``--data`` (building and caching it when needed; ``echo``:
    the pipeline's progress lines reach standard error)."""
    if data is None:
        target = cache_root() / f"{SYNTHETIC_DEFAULT}-{pipelines_key()}"
        if not (target / "metadata.json").is_file():
            target.parent.mkdir(parents=True, exist_ok=True)
            _run_pipeline("pipelines.synthetic", ["--output", str(target)], log, echo)
        return target
    path = Path(data)
    if path.is_dir():
        return path
    if not path.exists():
        raise DataError(f"--data {data}: no such file or directory")
    pipeline = detect_pipeline(path)
    args: list[str] = []  # the pipelines' defaults; part of the cache key
    key = hashlib.sha256(
        (file_sha256(path) + "|" + pipeline + "|" + " ".join(args) + "|" + pipelines_key())
        .encode()).hexdigest()[:16]
    target = cache_root() / f"{pipeline}-{path.stem}-{key}"
    if not (target / "metadata.json").is_file():
        target.parent.mkdir(parents=True, exist_ok=True)
        _run_pipeline(f"pipelines.{pipeline}", ["--input", str(path), "--output", str(target),
                                                *args], log, echo)
    return target
