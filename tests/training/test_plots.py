import numpy as np
import pytest

from mdaf_tf.metrics import exact_auc
from mdaf_tf.training import plots

PNG = b"\x89PNG\r\n\x1a\n"


def loop_roc(labels, scores):
    """One (FPR, TPR) point per distinct threshold t, highest first: the shares of negatives
    and positives scoring >= t; (0, 0) first."""
    pos = [s for y, s in zip(labels, scores, strict=True) if y == 1]
    neg = [s for y, s in zip(labels, scores, strict=True) if y == 0]
    points = [(0.0, 0.0)]
    for t in sorted(set(scores), reverse=True):
        points.append((sum(s >= t for s in neg) / len(neg), sum(s >= t for s in pos) / len(pos)))
    return points


@pytest.mark.parametrize("seed", range(3))
def test_roc_points_match_a_loop_over_thresholds_and_enclose_the_exact_auc(seed):
    rng = np.random.default_rng(seed)
    labels = (rng.random(120) < 0.4).astype(int)
    scores = np.round(rng.random(120) + 0.3 * labels, 1)  # many ties
    fpr, tpr = plots.roc_points(labels, scores)
    np.testing.assert_allclose(np.stack([fpr, tpr], axis=1),
                               loop_roc(labels, scores.tolist()), atol=1e-12)
    assert (fpr[-1], tpr[-1]) == (1.0, 1.0)
    area = float(np.sum(np.diff(fpr) * (tpr[1:] + tpr[:-1]) / 2))
    assert area == pytest.approx(exact_auc(labels, scores), abs=1e-12)


def test_roc_points_are_undefined_for_one_class():
    assert plots.roc_points([1, 1], [0.2, 0.4]) is None


@pytest.fixture
def titles(monkeypatch):
    """The axes titles and legend texts of every figure saved through ``plots``."""
    seen = {}
    real = plots.save_figure_atomic

    def record(fig, path, **kwargs):
        legends = [t.get_text() for ax in fig.axes if ax.get_legend()
                   for t in ax.get_legend().get_texts()]
        seen[path.name] = ([ax.get_title() for ax in fig.axes], legends)
        real(fig, path, **kwargs)

    monkeypatch.setattr(plots, "save_figure_atomic", record)
    return seen


def test_roc_and_reliability_figures_name_their_split_and_figures(tmp_path, titles):
    rng = np.random.default_rng(1)
    p = rng.random(200)
    y = (rng.random(200) < p).astype(np.float32)
    plots.roc_curve(y, p, tmp_path / "roc.png", split="test")
    plots.reliability_diagram(y, p, tmp_path / "reliability.png", split="validation", bins=5)
    for name in ("roc.png", "reliability.png"):
        data = (tmp_path / name).read_bytes()
        assert data[:8] == PNG and len(data) > 1000
    roc_titles, roc_legend = titles["roc.png"]
    assert "on test" in roc_titles[0] and f"AUC {exact_auc(y, p):.4f}" in roc_legend[1]
    (top, _), legend = titles["reliability.png"]
    assert "on validation" in top and "5 equal-width bins" in top
    assert any(text.startswith("model (ECE ") for text in legend)
    assert not list(tmp_path.glob(".*tmp*"))  # written through a renamed temporary


def test_figures_still_save_for_one_class_and_non_finite_predictions(tmp_path, titles):
    plots.roc_curve([0, 0, 0], [0.1, 0.2, 0.3], tmp_path / "roc.png", split="test")
    plots.reliability_diagram([0, 1], [np.nan, 0.5], tmp_path / "reliability.png")
    assert (tmp_path / "roc.png").read_bytes()[:8] == PNG
    assert (tmp_path / "reliability.png").read_bytes()[:8] == PNG
