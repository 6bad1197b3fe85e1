"""The regularisation search space of the seed's Table 6 (plus, optionally, the learning rate).

Each hyperparameter is named after the config field it sets: ``dropout`` (``ModelConfig``),
``weight_decay``, ``label_smoothing`` and ``learning_rate`` (``TrainConfig``). Weight decay and
the learning rate are sampled on a log scale, dropout and label smoothing linearly.
"""

from __future__ import annotations

import dataclasses

from mdaf_tf.config import ConfigError

MODEL_FIELDS = ("dropout",)
TRAIN_FIELDS = ("weight_decay", "label_smoothing", "learning_rate")


@dataclasses.dataclass(frozen=True)
class Bounds:
    low: float
    high: float
    log: bool = False


DEFAULT_BOUNDS = {
    "dropout": Bounds(0.1, 0.4),
    "weight_decay": Bounds(1e-5, 1e-4, log=True),
    "label_smoothing": Bounds(0.0, 0.1),
    "learning_rate": Bounds(1e-4, 1e-3, log=True),
}
# Inclusive ranges each field accepts at all.
_VALID_RANGE = {
    "dropout": (0.0, 0.99),
    "weight_decay": (0.0, 1.0),
    "label_smoothing": (0.0, 1.0),
    "learning_rate": (0.0, 1.0),
}


def parse_bounds(name: str, text: str) -> Bounds:
    """``"LOW,HIGH"`` for the hyperparameter ``name``; ConfigError naming the flag."""
    flag = "--" + name.replace("_", "-")
    parts = [p.strip() for p in str(text).split(",")]
    try:
        if len(parts) != 2:
            raise ValueError
        low, high = (float(p) for p in parts)
    except ValueError:
        raise ConfigError(f"{flag} {text!r}: expected two numbers LOW,HIGH") from None
    log = DEFAULT_BOUNDS[name].log
    lowest, highest = _VALID_RANGE[name]
    if not low < high:
        raise ConfigError(f"{flag} {text}: bounds in the wrong order (LOW must be < HIGH)")
    if low < lowest or high > highest:
        raise ConfigError(f"{flag} {text}: bounds must lie in [{lowest}, {highest}]")
    if log and low <= 0:
        raise ConfigError(f"{flag} {text}: sampled on a log scale, so LOW must be > 0")
    return Bounds(low, high, log)


def build_space(bounds_text: dict[str, str | None], tune_learning_rate: bool) -> dict:
    """``{name: Bounds}`` from the flags' texts (None = default); lr only when asked for."""
    space = {}
    for name, default in DEFAULT_BOUNDS.items():
        text = bounds_text.get(name)
        if name == "learning_rate" and not (tune_learning_rate or text is not None):
            continue
        space[name] = default if text is None else parse_bounds(name, text)
    return space


def space_to_dict(space: dict) -> dict:
    return {name: dataclasses.asdict(b) for name, b in space.items()}
