"""Shared checks for the baseline model tests: .keras round trips and numpy building blocks."""

from __future__ import annotations

import keras
import numpy as np

from mdaf_tf.data import schema


def predict(model, batch) -> dict:
    return {k: np.asarray(v) for k, v in model(batch, training=False).items()}


def assert_keras_round_trip(model, cls, batch, tmp_path):
    """Save to .keras, load: same class, same config, identical outputs."""
    path = tmp_path / f"{model.name}.keras"
    model.save(path)
    restored = keras.models.load_model(path)
    assert isinstance(restored, cls)
    assert restored.config == model.config
    expected = predict(model, batch)
    actual = predict(restored, batch)
    assert set(actual) == set(expected) == {"logit", "probability"}
    np.testing.assert_array_equal(actual["probability"], expected["probability"])
    np.testing.assert_allclose(expected["probability"], 1 / (1 + np.exp(-expected["logit"])),
                               rtol=1e-5, atol=1e-7)
    assert expected["probability"].shape == (len(batch[schema.USER_ID]), 1)
    clone = cls.from_config(model.get_config())
    assert clone.config == model.config
    return restored


def tables(model) -> dict:
    """The embedding tables as numpy: {"user", "item", "cate"}."""
    emb = model.get_layer("feature_embedding")
    return {
        "user": np.asarray(emb.tables["user"].embeddings),
        "item": np.asarray(emb.tables["item"].embeddings),
        "cate": np.asarray(emb.tables["cate"].embeddings),
    }


def static_x0(model, batch) -> np.ndarray:
    """[e_user; e_item; e_cate] looked up in numpy."""
    t = tables(model)
    return np.concatenate(
        [t["user"][batch[schema.USER_ID]], t["item"][batch[schema.ITEM_ID]],
         t["cate"][batch[schema.CATE_ID]]], axis=-1
    )


def history_tokens(model, batch) -> tuple[np.ndarray, np.ndarray]:
    """History tokens (zeroed at padding) and mask, looked up in numpy."""
    t = tables(model)
    mask = batch[schema.HIST_ITEM_ID] != schema.PAD_ID
    tokens = np.concatenate(
        [t["item"][batch[schema.HIST_ITEM_ID]], t["cate"][batch[schema.HIST_CATE_ID]]], axis=-1
    )
    return tokens * mask[..., None], mask


def dense(layer, x, activation=None):
    y = x @ np.asarray(layer.kernel)
    if layer.bias is not None:
        y = y + np.asarray(layer.bias)
    return activation(y) if activation else y


def relu(x):
    return np.maximum(x, 0.0)


def sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def mlp(layer, x):
    """An ``MLP`` layer without normalization, at inference (dropout off)."""
    for d in layer.dense_layers:
        x = relu(dense(d, x))
    if layer.output_layer is not None:
        x = dense(layer.output_layer, x)
    return x


def with_extra_padding(batch: dict, extra: int) -> dict:
    """``batch`` with ``extra`` more left-padded history positions, and a real category id
    under every padded item (padding must be recognised by the item id alone)."""
    n = len(batch[schema.HIST_ITEM_ID])
    padded = dict(batch)
    for key in (schema.HIST_ITEM_ID, schema.HIST_CATE_ID):
        padded[key] = np.concatenate([np.zeros((n, extra), np.int64), batch[key]], axis=1)
    pad = padded[schema.HIST_ITEM_ID] == schema.PAD_ID
    padded[schema.HIST_CATE_ID] = np.where(pad, 3, padded[schema.HIST_CATE_ID])
    return padded


def fit_a_simple_rule(model, batch, epochs: int = 15) -> list[float]:
    """Fit ``model`` on ``batch`` labelled by a rule over the target and the last behaviour
    (or the user's parity); returns the per-epoch losses."""
    label = (batch[schema.CATE_ID] == batch[schema.HIST_CATE_ID][:, -1]) | (
        batch[schema.USER_ID] % 2 == 0)
    model.compile(optimizer=keras.optimizers.Adam(1e-2),
                  loss={"probability": "binary_crossentropy"}, jit_compile=False)
    history = model.fit(batch, {"probability": label.astype("float32")}, epochs=epochs,
                        batch_size=len(label), verbose=0)
    return history.history["loss"]


def one_per_class(models: dict) -> dict:
    """Of ``models`` (name -> built model), for each model class the name whose model has the
    most layers: the variant that leaves none of its class's layers out (``mdaf_match`` of
    MDAF's five names, ``dnn_match`` of the DNN's two). The others differ from it only in
    layers it also has, so an export check of these covers every layer a model can hold."""
    from mdaf_tf.internal_apis import nested_layers

    best = {}
    for name, model in models.items():
        size = len(nested_layers(model))
        if type(model) not in best or size > best[type(model)][1]:
            best[type(model)] = (name, size)
    return {name: models[name] for name, _ in best.values()}
