"""The regularisation search space of the seed's Table 6 (plus, optionally, the learning rate
and the embedding L2 penalty).

Each hyperparameter is named after the config field it sets: ``dropout`` and ``embedding_l2``
(every model's config), ``weight_decay``, ``label_smoothing`` and ``learning_rate``
(``TrainConfig``). Weight decay, the learning rate and the embedding penalty are sampled on a
log scale, dropout and label smoothing linearly. The learning rate and the embedding penalty
are searched only when asked for (a flag, or bounds given).
"""

from __future__ import annotations

import dataclasses

from mdaf_tf.config import ConfigError

MODEL_FIELDS = ("dropout", "embedding_l2")
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
    # Around what validation chose per setting (studies/embedding_l2/results/: 1e-3 on A,
    # 1e-4 on C); 0, the config's default, is the untuned baseline.
    "embedding_l2": Bounds(1e-5, 1e-3, log=True),
}
# Inclusive ranges each field accepts at all.
_VALID_RANGE = {
    "dropout": (0.0, 0.99),
    "weight_decay": (0.0, 1.0),
    "label_smoothing": (0.0, 1.0),
    "learning_rate": (0.0, 1.0),
    "embedding_l2": (0.0, 1.0),
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


def build_space(bounds_text: dict[str, str | None], tune_learning_rate: bool = False,
                tune_embedding_l2: bool = False) -> dict:
    """``{name: Bounds}`` from the flags' texts (None = default); the opt-in fields (learning
    rate, embedding penalty) only when asked for, by their ``tune_*`` flag or by bounds."""
    opt_in = {"learning_rate": tune_learning_rate, "embedding_l2": tune_embedding_l2}
    space = {}
    for name, default in DEFAULT_BOUNDS.items():
        text = bounds_text.get(name)
        if name in opt_in and not (opt_in[name] or text is not None):
            continue
        space[name] = default if text is None else parse_bounds(name, text)
    return space


def space_to_dict(space: dict) -> dict:
    return {name: dataclasses.asdict(b) for name, b in space.items()}
