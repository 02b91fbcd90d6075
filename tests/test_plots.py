import time

import numpy as np
from sklearn.decomposition import PCA

from tfvae.evaluation import plots


def test_projection_is_pca_for_wide_codes_and_identity_for_2d():
    codes = np.random.default_rng(0).normal(size=(200, 6)) * np.arange(1, 7)
    points, how = plots.project_to_2d(codes)
    reference = PCA(2).fit_transform(codes)
    np.testing.assert_allclose(np.abs(points), np.abs(reference), atol=1e-8)
    assert "PCA of 6-D z" in how
    two = codes[:, :2]
    np.testing.assert_array_equal(plots.project_to_2d(two)[0], two)


def test_figures_are_written_as_png(tmp_path, digits):
    x = digits.x_test[:10]
    for name, figure in {
        "recon.png": plots.reconstructions_figure(x, x),
        "grid.png": plots.grid_figure(x, "samples"),
        "latent.png": plots.latent_figure(
            np.random.default_rng(0).normal(size=(30, 3)), np.arange(30) % 3
        ),
        "curves.png": plots.history_figure({"loss": [3.0, 2.0], "val_loss": [3.5, 2.5]}),
        "vectors.png": plots.reconstructions_figure(np.zeros((3, 7)), np.ones((3, 7))),
    }.items():
        plots.save_figure(figure, tmp_path / name)
        assert (tmp_path / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_latent_figure_draws_any_labels_in_bounded_time(tmp_path):
    """Ticks over the labels' own values, 1e18 apart by 1, once made matplotlib loop forever."""
    codes = np.random.default_rng(0).normal(size=(60, 2))
    for labels, names, shown in [
        (np.repeat([10**18, 10**18 + 1], 30), None, ["1000000000000000000", "1000000000000000001"]),
        (np.repeat([np.nan, 1.0], 30), None, ["1.0", "nan"]),
        (np.repeat([0, 1], 30), ("cat", "a" * 40), ["cat", "a" * 23 + "…"]),
        (np.arange(60), None, None),
    ]:
        start = time.monotonic()
        figure = plots.latent_figure(codes, labels, class_names=names)
        colour_bar = figure.axes[-1]
        ticks = [tick.get_text() for tick in colour_bar.get_yticklabels()]
        plots.save_figure(figure, tmp_path / "latent.png")
        assert time.monotonic() - start < 10
        if shown is not None:
            assert ticks == shown
        else:
            assert len(ticks) == plots.MAX_NAMED_CLASSES and ticks[0] == "0" and ticks[-1] == "59"
