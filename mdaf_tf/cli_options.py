"""The options ``train``, ``tune`` and ``compare`` share, each declared once with its help,
and the checks of the training fields they set.

Each command adds the ones it takes (``add_data(parser)``, ...) beside its own options; a
``note`` adds what is particular to that command to the shared help. Nothing here imports
TensorFlow: the parsers are built before it starts.
"""

from __future__ import annotations

from mdaf_tf.data import source as data_source
from mdaf_tf.precision import PRECISIONS

STRATEGIES = ("default", "mirrored", "multiworker")


def _help(text: str, note: str) -> str:
    return f"{text}; {note}" if note else text


def add_data(parser, *, with_epochs: bool = True) -> None:
    parser.add_argument(
        "--data", metavar="DIR|FILE",
        help="dataset directory written by a pipelines.* command, or a raw file: a Taobao "
        "UserBehavior CSV or an impression log (.csv with header / .parquet), which goes "
        "through its pipeline into a cached directory ($MDAF_TF_DATA_CACHE or ./data_cache). "
        "Default: the synthetic dataset, built once into data_cache/synthetic-default-KEY, "
        f"with {data_source.describe_preset(with_epochs=with_epochs)} unless --config or "
        "flags say otherwise")


def add_model(parser) -> None:
    parser.add_argument("--model", metavar="NAME", help=(
        "a registered model name (README's model table), or MODULE:NAME for a model your own "
        "module registers with mdaf_tf.models.register_model (default: the config's, else "
        "mdaf)"))


def add_seed(parser, note: str = "") -> None:
    parser.add_argument("--seed", type=int, help=_help(
        "seed for initialisation, dropout and data order (default 42)", note))


def add_config(parser, note: str = "") -> None:
    parser.add_argument("--config", metavar="FILE.json", help=_help(
        "JSON of the model's config and TrainConfig fields, nested as "
        '{"model": {...}, "train": {...}} (as config.json and the tuner\'s best_config.json) '
        "or flat; the command-line flags override it", note))


def add_batch_size(parser) -> None:
    parser.add_argument(
        "--batch-size", type=int,
        help="examples per training step (default: the size rule's, from the training "
        "split's size: 2048 from about 1M examples, 256 up to 256k; the learning rate and "
        "warmup follow unless --config sets them)")


def add_max_steps_per_epoch(parser) -> None:
    parser.add_argument("--max-steps-per-epoch", type=int, metavar="N",
                        help="cap the training steps per epoch (default: the whole split)")


def add_precision(parser) -> None:
    parser.add_argument(
        "--precision", choices=PRECISIONS,
        help="numeric precision of the models with 16-bit layers (their config's "
        "precision): float32 (default), mixed_bfloat16 "
        "(CPUs with AVX512-BF16/AMX, recent GPUs) or mixed_float16 (GPUs; loss scaling on). "
        "Variables, the loss, the AUC, the scan's state and the outputs stay float32")


def add_strategy(parser, note: str = "") -> None:
    parser.add_argument("--strategy", choices=STRATEGIES, help=_help(
        "tf.distribute strategy: default (one device), mirrored (every local GPU, or every "
        "logical CPU device), multiworker (several hosts, from the TF_CONFIG environment "
        "variable; only the chief writes files). The global batch stays --batch-size", note))


def check_training(train_config, *, model: bool = True, epochs: bool = True) -> None:
    """A ConfigError naming the flag for an unknown model (with ``model``), epochs (with
    ``epochs``) or a batch size below 1, or a negative step cap."""
    from mdaf_tf.config import ConfigError, check_positive
    from mdaf_tf.models import registry

    if model:
        registry.registration(train_config.model)
    check_positive(train_config, ("epochs", "batch_size") if epochs else ("batch_size",),
                   as_flags=True)
    if train_config.max_steps_per_epoch < 0:
        raise ConfigError("--max-steps-per-epoch must be >= 0")
