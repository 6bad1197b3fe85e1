import keras
import numpy as np
import pytest
from tiny_run import tiny_model

from mdaf_tf.config import TrainConfig
from mdaf_tf.models.config import ModelConfig
from mdaf_tf.training import checkpoint
from mdaf_tf.training.optimizer import build_optimizer

CONFIG = ModelConfig(vocab_sizes={"user": 6, "item": 7, "cate": 5}, max_seq_len=3)


def model_and_optimizer(seed):
    keras.utils.set_random_seed(seed)
    model = tiny_model("tiny", CONFIG)
    return model, build_optimizer(TrainConfig(batch_size=2048), model, 10)


def test_round_trip_of_model_optimizer_and_state(tmp_path):
    model, optimizer = model_and_optimizer(0)
    optimizer.iterations.assign(17)
    for v in optimizer.variables[1:]:
        v.assign(np.random.default_rng(1).normal(size=v.shape).astype("float32"))
    checkpoint.save(tmp_path, 3, model, optimizer, {"epoch": 3, "x": [1, 2]})
    other, other_optimizer = model_and_optimizer(1)
    state = checkpoint.restore(checkpoint.latest(tmp_path), other, other_optimizer)
    assert state == {"epoch": 3, "x": [1, 2]}
    for a, b in zip(model.variables, other.variables, strict=True):
        np.testing.assert_array_equal(a.numpy(), b.numpy())  # includes dropout seed state
    for a, b in zip(optimizer.variables, other_optimizer.variables, strict=True):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    assert int(other_optimizer.iterations.numpy()) == 17


def test_keeps_latest_and_requested_epochs_only(tmp_path):
    model, optimizer = model_and_optimizer(0)
    for epoch in range(1, 5):
        checkpoint.save(tmp_path, epoch, model, optimizer, {"epoch": epoch}, keep={2})
    assert sorted(checkpoint.epoch_dirs(tmp_path)) == [2, 4]
    assert checkpoint.latest(tmp_path).name == "epoch-0004"


def test_partial_write_is_never_seen_as_a_checkpoint(tmp_path):
    model, optimizer = model_and_optimizer(0)
    checkpoint.save(tmp_path, 1, model, optimizer, {"epoch": 1})
    # A kill while writing epoch 2 leaves only a temporary directory.
    (tmp_path / ".tmp-epoch-0002-999").mkdir()
    (tmp_path / ".tmp-epoch-0002-999" / "model.npz").write_bytes(b"partial")
    assert checkpoint.latest(tmp_path).name == "epoch-0001"


def test_mismatched_model_is_a_clear_error(tmp_path):
    model, optimizer = model_and_optimizer(0)
    checkpoint.save(tmp_path, 1, model, optimizer, {"epoch": 1})
    bigger = tiny_model("tiny", ModelConfig(vocab_sizes={"user": 9, "item": 7, "cate": 5},
                                            max_seq_len=3))
    with pytest.raises(checkpoint.CheckpointError, match="shape"):
        checkpoint.restore(checkpoint.latest(tmp_path), bigger)
