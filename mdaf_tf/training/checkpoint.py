"""Per-epoch training checkpoints that a killed run can resume from.

Layout under ``RUN/checkpoints/``::

    epoch-0003/model.npz       every model variable (weights, dropout seed-generator states)
    epoch-0003/optimizer.npz   every optimizer variable (step counter, Adam moments)
    epoch-0003/state.json      completed epochs, early-stopping state, metric history, configs

    mid-epoch/                     a backup in the middle of an epoch (every --backup-every,
                                   and on Ctrl-C): the same files plus partial.npz (the
                                   metric accumulators: loss, train AUC); state.json's "step"
                                   says how many steps of the next epoch are done

Each directory is written under a temporary name and renamed when complete, so a kill at any
moment leaves either the previous checkpoint or the new one, never a partial one. Only the
latest epoch and the best epoch (whose weights early stopping restores) are kept; the next
epoch checkpoint replaces ``mid-epoch/``.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path

import numpy as np

_EPOCH_DIR = re.compile(r"^epoch-(\d{4})$")
MID_EPOCH = "mid-epoch"
# state.json's "format": 2 since training runs through model.fit (Keras EarlyStopping's state,
# 0-based best epoch, metric accumulators mid-epoch). Format 1 came from the custom loop.
STATE_FORMAT = 2


class CheckpointError(RuntimeError):
    """No usable checkpoint, or one that does not match the model or configuration."""


def _save_variables(path: Path, variables) -> None:
    arrays = {f"v{i:05d}": np.asarray(v.numpy()) for i, v in enumerate(variables)}
    with open(path, "wb") as f:
        np.savez(f, **arrays)
        f.flush()
        os.fsync(f.fileno())


def _load_variables(path: Path, variables, what: str) -> None:
    with np.load(path) as data:
        keys = sorted(data.files)
        if len(keys) != len(variables):
            raise CheckpointError(
                f"{path}: holds {len(keys)} {what} variables, the current {what} has "
                f"{len(variables)} (was the configuration changed?)"
            )
        for key, variable in zip(keys, variables, strict=True):
            value = data[key]
            if tuple(value.shape) != tuple(variable.shape):
                raise CheckpointError(
                    f"{path}: {what} variable {variable.path} has shape {tuple(variable.shape)}, "
                    f"checkpoint has {value.shape}"
                )
            variable.assign(value)


def epoch_dirs(checkpoint_dir: Path) -> dict[int, Path]:
    if not checkpoint_dir.is_dir():
        return {}
    found = {}
    for child in checkpoint_dir.iterdir():
        match = _EPOCH_DIR.match(child.name)
        if match and (child / "state.json").is_file():
            found[int(match.group(1))] = child
    return found


def _write_dir(tmp: Path, model, optimizer, state: dict) -> None:
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir()
    _save_variables(tmp / "model.npz", model.variables)
    _save_variables(tmp / "optimizer.npz", optimizer.variables)
    with open(tmp / "state.json", "w") as f:
        json.dump(state, f, indent=1)
        f.flush()
        os.fsync(f.fileno())


def save_mid_epoch(checkpoint_dir: Path, model, optimizer, state: dict, arrays: dict) -> Path:
    """Write ``mid-epoch/`` (mid-epoch state; ``state["step"]`` steps of epoch
    ``state["epoch"] + 1`` done) atomically, replacing an older one."""
    checkpoint_dir.mkdir(parents=True, exist_ok=True)
    final = checkpoint_dir / MID_EPOCH
    tmp = checkpoint_dir / f".tmp-{MID_EPOCH}-{os.getpid()}"
    _write_dir(tmp, model, optimizer, state)
    with open(tmp / "partial.npz", "wb") as f:
        np.savez(f, **arrays)
        f.flush()
        os.fsync(f.fileno())
    if final.exists():
        old = checkpoint_dir / f".tmp-old-{MID_EPOCH}-{os.getpid()}"
        os.replace(final, old)
        os.replace(tmp, final)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(tmp, final)
    return final


def read_partial(path: Path) -> dict:
    """The arrays of a ``mid-epoch/`` checkpoint ({} for an epoch checkpoint)."""
    if not (path / "partial.npz").is_file():
        return {}
    with np.load(path / "partial.npz") as data:
        return {k: data[k] for k in data.files}


def save(checkpoint_dir: Path, epoch: int, model, optimizer, state: dict, keep=()) -> Path:
    """Write checkpoint ``epoch`` atomically; delete other epochs except those in ``keep``."""
    checkpoint_dir.mkdir(parents=True, exist_ok=True)
    final = checkpoint_dir / f"epoch-{epoch:04d}"
    tmp = checkpoint_dir / f".tmp-epoch-{epoch:04d}-{os.getpid()}"
    _write_dir(tmp, model, optimizer, state)
    if final.exists():
        shutil.rmtree(final)
    os.replace(tmp, final)
    keep = set(keep) | {epoch}
    for other_epoch, path in epoch_dirs(checkpoint_dir).items():
        if other_epoch not in keep:
            shutil.rmtree(path, ignore_errors=True)
    shutil.rmtree(checkpoint_dir / MID_EPOCH, ignore_errors=True)
    for leftover in checkpoint_dir.glob(".tmp-*"):
        shutil.rmtree(leftover, ignore_errors=True)
    return final


def latest(checkpoint_dir: Path) -> Path | None:
    """The newest checkpoint: ``mid-epoch/`` when it is past the last epoch checkpoint."""
    dirs = epoch_dirs(checkpoint_dir)
    newest = dirs[max(dirs)] if dirs else None
    interrupted = checkpoint_dir / MID_EPOCH
    if (interrupted / "state.json").is_file():
        if newest is None or read_state(interrupted)["epoch"] >= max(dirs):
            return interrupted
    return newest


def read_state(path: Path) -> dict:
    with open(path / "state.json") as f:
        return json.load(f)


def check_format(path: Path, state: dict) -> None:
    """CheckpointError unless ``state`` (read from ``path``) has this version's format."""
    if state.get("format") != STATE_FORMAT:
        raise CheckpointError(
            f"{path}: checkpoint written by an older mdaf_tf (state format "
            f"{state.get('format', 1)}, this version reads {STATE_FORMAT}); train again "
            "without --resume")


def restore(path: Path, model, optimizer=None) -> dict:
    """Load model (and optimizer) variables from checkpoint ``path``; return its state."""
    _load_variables(path / "model.npz", model.variables, "model")
    if optimizer is not None:
        _load_variables(path / "optimizer.npz", optimizer.variables, "optimizer")
    return read_state(path)


def load_model_weights(path: Path, model) -> None:
    _load_variables(path / "model.npz", model.variables, "model")
