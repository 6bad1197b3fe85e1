"""The diagnostic's features: the one-hot static cross and the sequential feature q."""

from __future__ import annotations

import numpy as np

from studies.linear_ceiling import linear_ceiling


def test_features_hold_the_cross_the_item_and_q():
    # Two examples; histories most recent last, padded on the left with 0.
    split = {
        "label": np.array([1, 0]),
        "user_id": np.array([2, 3]),
        "item_id": np.array([4, 5]),
        "cate_id": np.array([2, 3]),
        "hist_cate_id": np.array([[0, 2, 3, 2], [0, 0, 3, 2]]),
    }
    x = linear_ceiling.features(split, 4, 6, 4, static=True, sequence=True, recent=3,
                                decay=0.5).toarray()
    assert x.shape == (2, 4 * 4 + 6 + 1)
    # user x category one-hot, then item one-hot
    assert x[0, 2 * 4 + 2] == 1 and x[1, 3 * 4 + 3] == 1 and x[:, :16].sum() == 2
    assert x[0, 16 + 4] == 1 and x[1, 16 + 5] == 1
    # q over the 3 latest: example 0 sees 2 (latest, weight 1), 3, 2 (weight 0.25) -> 1.25;
    # example 1 sees 2, 3 (weight 0.5), 0 -> 0.5
    np.testing.assert_allclose(x[:, -1], [1.25, 0.5])


def test_item_feature_sets_leave_out_the_user_category_cells():
    split = {"label": np.array([1, 0]), "user_id": np.array([2, 3]), "item_id": np.array([4, 5]),
             "cate_id": np.array([2, 3]), "hist_cate_id": np.array([[0, 2, 3, 2], [0, 0, 3, 2]])}
    params = linear_ceiling.FEATURE_SETS["item_sequence"]
    x = linear_ceiling.features(split, 4, 6, 4, recent=3, decay=0.5, **params).toarray()
    assert x.shape == (2, 6 + 1)
    assert x[0, 4] == 1 and x[1, 5] == 1
    np.testing.assert_allclose(x[:, -1], [1.25, 0.5])
    x = linear_ceiling.features(split, 4, 6, 4, recent=3, decay=0.5,
                                **linear_ceiling.FEATURE_SETS["item"]).toarray()
    np.testing.assert_array_equal(x, [[0, 0, 0, 0, 1, 0], [0, 0, 0, 0, 0, 1]])
