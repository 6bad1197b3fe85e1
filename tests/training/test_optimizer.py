import keras
import numpy as np
import pytest
from tiny_run import tiny_model

from mdaf_tf.config import TrainConfig
from mdaf_tf.models.config import ModelConfig
from mdaf_tf.training.optimizer import build_optimizer, no_decay_variables

CONFIG = ModelConfig(vocab_sizes={"user": 6, "item": 7, "cate": 5}, max_seq_len=3)


def one_step_with_zero_gradients(decay_everything: bool):
    """With zero gradients Adam's update is 0, so only decoupled weight decay moves weights."""
    keras.utils.set_random_seed(0)
    model = tiny_model("tiny", CONFIG)
    train = TrainConfig(epochs=1, learning_rate=0.1, weight_decay=0.5, warmup_epochs=0,
                        decay_biases_norms_embeddings=decay_everything)
    # A 1-step schedule with warmup 0 gives lr = peak at step 0.
    optimizer = build_optimizer(train, model, steps_per_epoch=1)
    for v in model.trainable_variables:  # non-zero biases and LayerNorm beta
        v.assign(np.full(v.shape, 2.0, dtype="float32"))
    before = {v.path: np.array(v.numpy()) for v in model.trainable_variables}
    zeros = [np.zeros(v.shape, "float32") for v in model.trainable_variables]
    optimizer.apply_gradients(zip(zeros, model.trainable_variables, strict=True))
    after = {v.path: np.array(v.numpy()) for v in model.trainable_variables}
    return model, before, after


def test_no_decay_on_biases_norms_and_embeddings():
    model, before, after = one_step_with_zero_gradients(decay_everything=False)
    excluded = {v.path for v in no_decay_variables(model)}
    assert any("embedding" in p for p in excluded)
    assert any(p.endswith("bias") for p in excluded)
    assert {"norm/gamma", "norm/beta"} <= excluded
    for path, value in before.items():
        if path in excluded:
            np.testing.assert_array_equal(after[path], value)
        else:
            assert path.endswith("kernel")
            # decoupled decay: w <- w - lr * wd * w
            np.testing.assert_allclose(after[path], value * (1 - 0.1 * 0.5), rtol=1e-6)


def test_decay_everything_when_configured():
    _, before, after = one_step_with_zero_gradients(decay_everything=True)
    for path, value in before.items():
        np.testing.assert_allclose(after[path], value * (1 - 0.1 * 0.5), rtol=1e-6)


def test_global_clipnorm_and_betas_from_config():
    model = tiny_model("tiny", CONFIG)
    train = TrainConfig(batch_size=2048, clipnorm=1.0, beta_1=0.8, beta_2=0.99)
    optimizer = build_optimizer(train, model, 10)
    assert optimizer.global_clipnorm == pytest.approx(1.0)
    assert optimizer.beta_1 == pytest.approx(0.8) and optimizer.beta_2 == pytest.approx(0.99)


def test_mamba_a_log_and_d_are_not_decayed_but_its_kernels_are():
    # mamba-ssm's Mamba marks A_log and D `_no_weight_decay`; the projections decay.
    from mdaf_tf.layers import MambaBlock

    keras.utils.set_random_seed(0)
    inputs = keras.Input((5, 8))
    model = keras.Model(inputs, MambaBlock(d_model=8, d_state=4, name="mamba")(inputs))
    excluded = {v.path.rsplit("/", 1)[-1] for v in no_decay_variables(model)}
    assert {"A_log", "D"} <= excluded
    assert not {"in_proj_kernel", "x_proj_kernel", "out_proj_kernel"} & excluded
    train = TrainConfig(epochs=1, learning_rate=0.1, weight_decay=0.5, warmup_epochs=0)
    optimizer = build_optimizer(train, model, steps_per_epoch=1)
    before = {v.path: np.array(v.numpy()) for v in model.trainable_variables}
    optimizer.apply_gradients(zip([np.zeros(v.shape, "float32") for v in
                                   model.trainable_variables], model.trainable_variables,
                                  strict=True))
    for v in model.trainable_variables:
        name = v.path.rsplit("/", 1)[-1]
        factor = 1.0 if name in excluded else 1 - 0.1 * 0.5
        np.testing.assert_allclose(v.numpy(), before[v.path] * factor, rtol=1e-6)
