"""The probe's parts: each example matched to its simulated impression, and the regression
giving back the weights a logit was made with."""

from __future__ import annotations

import numpy as np
import pytest

from pipelines import synthetic
from studies.signal_probe import signal_probe


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("synthetic") / "data"
    synthetic.main(["--output", str(out), "--users", "30", "--items", "40", "--categories", "6",
                    "--impressions-per-user", "25", "--static-strength", "1.3",
                    "--sequence-strength", "0.9", "--seed", "3"])
    return out


def test_the_parts_rebuild_the_oracle_logit(data_dir):
    parts, weights = signal_probe.true_parts(str(data_dir), "val")
    assert weights == pytest.approx({"part_affinity": 1.3 / np.sqrt(2),
                                     "part_quality": 1.3 / np.sqrt(2), "part_sequence": 0.9})
    logit = np.log(parts["p"]) - np.log1p(-parts["p"])
    rebuilt = -1.4 + sum(weights[p] * parts[p] for p in signal_probe.PARTS)
    np.testing.assert_allclose(logit, rebuilt, atol=1e-9)
    assert parts["part_sequence"].max() > 0 and parts["part_affinity"].std() > 0
    fit = signal_probe.regress(logit, parts, weights)
    assert fit["r2"] == pytest.approx(1.0, abs=1e-9)
    assert fit["learned"] == pytest.approx(dict.fromkeys(signal_probe.PARTS, 1.0), abs=1e-6)


def test_a_logit_of_one_part_is_credited_to_that_part_only():
    rng = np.random.default_rng(0)
    parts = {p: rng.standard_normal(500) for p in signal_probe.PARTS}
    weights = dict.fromkeys(signal_probe.PARTS, 0.5)
    fit = signal_probe.regress(3.0 * parts["part_quality"] + 1.0, parts, weights)
    assert fit["learned"] == pytest.approx({"part_affinity": 0.0, "part_quality": 6.0,
                                            "part_sequence": 0.0}, abs=1e-9)


def test_the_sequence_ceiling_is_a_function_of_q_alone(data_dir):
    """The sequence-only logistic regression's logit is a * q + b, with q recomputed from the
    history columns: the probe must credit it to q only, with R^2 = 1."""
    result = signal_probe.probe(str(data_dir), [], "val", lr_ceiling=True)
    fit = result["models"]["lr_ceiling_sequence"]
    assert fit["r2"] == pytest.approx(1.0, abs=1e-9)
    assert fit["learned"]["part_affinity"] == pytest.approx(0.0, abs=1e-9)
    assert fit["learned"]["part_quality"] == pytest.approx(0.0, abs=1e-9)
    assert fit["learned"]["part_sequence"] > 0
    assert set(result["models"]) == {"lr_ceiling_static", "lr_ceiling_sequence",
                                     "lr_ceiling_both"}
