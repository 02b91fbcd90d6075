import keras
import numpy as np
import pytest
import tensorflow_probability as tfp
from scipy.stats import norm

from tfvae.errors import TfvaeError
from tfvae.evaluation import latent_pictures
from tfvae.evaluation import plots
from tfvae.evaluation.figures import write_figures
from tfvae.models import VAE
from tfvae.models import Autoencoder
from tfvae.models import Decoder
from tfvae.models import DenoisingAutoencoder
from tfvae.models import Encoder
from tfvae.training.config import TrainConfig
from tfvae.training.recipe import build_compiled_model
from tfvae.training.recipe import count_steps_per_epoch


def small_vae(latent_dim=3, seed=0):
    keras.utils.set_random_seed(seed)
    vae = VAE(
        Encoder(latent_dim, hidden_units=(32,), probabilistic=True),
        Decoder((8, 8, 1), hidden_units=(32,)),
        seed=seed,
    )
    vae.build((None, 8, 8, 1))
    return vae


def decoded(model, z):
    return np.asarray(model.decode(np.asarray(z, np.float32)[None]))[0]


def test_manifold_grid_sits_on_prior_quantiles_with_zero_at_the_centre():
    vae = small_vae(latent_dim=3)
    images, coordinates = latent_pictures.manifold_grid(vae, n=5, dims=(0, 2))
    assert images.shape == (5, 5, 8, 8, 1) and coordinates.shape == (5, 5, 2)
    expected = norm.ppf(np.linspace(0.05, 0.95, 5))
    np.testing.assert_allclose(coordinates[0, :, 0], expected, atol=1e-12)  # left to right
    np.testing.assert_allclose(coordinates[:, 0, 1], expected[::-1], atol=1e-12)  # top down
    np.testing.assert_array_equal(coordinates[2, 2], [0.0, 0.0])
    np.testing.assert_array_equal(images[2, 2], decoded(vae, [0.0, 0.0, 0.0]))
    # A corner: dims 0 and 2 at their quantiles, dim 1 (not spanned) at 0.
    corner = np.float32([coordinates[0, 4, 0], 0.0, coordinates[0, 4, 1]])
    np.testing.assert_array_equal(images[0, 4], decoded(vae, corner))


def test_interpolation_ends_are_the_decoded_codes(digits):
    x_a, x_b = digits.x_test[0], digits.x_test[200]
    vae = small_vae()
    images, weights = latent_pictures.interpolate(vae, x_a, x_b, steps=7)
    assert images.shape == (7, 8, 8, 1)
    np.testing.assert_allclose(weights, np.linspace(0, 1, 7))
    mu_a = vae.encode(x_a[None])[0][0]
    mu_b = vae.encode(x_b[None])[0][0]
    np.testing.assert_array_equal(images[0], decoded(vae, mu_a))
    np.testing.assert_array_equal(images[-1], decoded(vae, mu_b))
    np.testing.assert_array_equal(
        images[3], decoded(vae, (np.asarray(mu_a, np.float64) + np.asarray(mu_b)) / 2)
    )
    # The deterministic autoencoders interpolate between their codes.
    keras.utils.set_random_seed(0)
    ae = DenoisingAutoencoder(
        Encoder(3, hidden_units=(32,)), Decoder((8, 8, 1), hidden_units=(32,))
    )
    ae.build((None, 8, 8, 1))
    images, _ = latent_pictures.interpolate(ae, x_a[None], x_b, steps=3)
    np.testing.assert_array_equal(images[0], decoded(ae, ae.encode(x_a[None])[0]))


def test_traversal_moves_one_dimension_around_the_posterior_mean(digits):
    vae = small_vae(latent_dim=3)
    x = digits.x_test[5]
    images, dims, values = latent_pictures.traverse(vae, x)
    assert images.shape == (3, 9, 8, 8, 1)
    np.testing.assert_array_equal(dims, [0, 1, 2])
    np.testing.assert_allclose(values, np.linspace(-3, 3, 9))
    mu = np.asarray(vae.encode(x[None])[0][0])
    for row in range(3):
        np.testing.assert_array_equal(images[row, 4], decoded(vae, mu))  # offset 0
    moved = mu.copy()
    moved[1] += 3.0
    np.testing.assert_array_equal(images[1, 8], decoded(vae, moved))
    images, dims, _ = latent_pictures.traverse(vae, x, dims=[2], values=[-1.0, 0.5])
    assert images.shape == (1, 2, 8, 8, 1) and dims.tolist() == [2]


def test_traversal_of_a_wide_latent_space_shows_its_most_informative_dims(digits):
    vae = small_vae(latent_dim=12)
    x = digits.x_test[5]
    _, dims, _ = latent_pictures.traverse(vae, x)
    mu, sigma = (np.asarray(t)[0] for t in vae.encode(x[None]))
    kl = latent_pictures.per_dim_kl(mu, sigma)
    assert len(dims) == latent_pictures.MAX_TRAVERSED_DIMS
    assert kl[dims].tolist() == sorted(kl, reverse=True)[: len(dims)]


def test_per_dim_kl_is_tfps_closed_form():
    mu = np.array([0.0, 1.5, -0.3])
    sigma = np.array([1.0, 0.2, 2.5])
    reference = tfp.distributions.Normal(mu, sigma).kl_divergence(
        tfp.distributions.Normal(np.float64(0), np.float64(1))
    )
    np.testing.assert_allclose(latent_pictures.per_dim_kl(mu, sigma), reference, rtol=1e-6)
    assert latent_pictures.per_dim_kl(0.0, 1.0) == 0.0


def test_most_active_dims_and_pairs():
    means = np.random.default_rng(0).normal(size=(500, 4)) * [0.1, 3.0, 1.0, 0.01]
    assert latent_pictures.most_active_dims(means, 3).tolist() == [1, 2, 0]
    assert latent_pictures.most_active_dims([0.5, 0.5, 2.0], 5).tolist() == [2, 0, 1]
    assert latent_pictures.pair_of_different_classes(np.array([3, 3, 3, 7, 1]), 5) == (0, 3)
    assert latent_pictures.pair_of_different_classes(np.array([3, 3]), 2) == (0, 1)
    assert latent_pictures.pair_of_different_classes(None, 9) == (0, 8)


def test_bad_arguments_are_refused(digits):
    vae = small_vae(latent_dim=3)
    x = digits.x_test[0]
    ae = Autoencoder(Encoder(2, hidden_units=(8,)), Decoder((8, 8, 1), hidden_units=(8,)))
    for call, message in [
        (lambda: latent_pictures.manifold_grid(ae), "manifold_grid needs a VAE"),
        (lambda: latent_pictures.traverse(ae, x), "traverse needs a VAE"),
        (lambda: latent_pictures.manifold_grid(vae, dims=(1, 1)), "two different latent"),
        (lambda: latent_pictures.manifold_grid(vae, dims=(0, 3)), "dims must be latent dim"),
        (lambda: latent_pictures.manifold_grid(vae, n=0), "n must be a positive integer"),
        (lambda: latent_pictures.manifold_grid(small_vae(1)), "latent_dim=1"),
        (lambda: latent_pictures.interpolate(vae, x, x, steps=1), "steps must be an integer"),
        (lambda: latent_pictures.interpolate(vae, digits.x_test[:2], x), "x_a must be one"),
        (
            lambda: latent_pictures.interpolate(object(), x, x),
            "expected a model of a registered tfvae family",
        ),
        (lambda: latent_pictures.traverse(vae, x, values=[np.nan]), "values must be"),
    ]:
        with pytest.raises(TfvaeError, match=message):
            call()


@pytest.fixture(scope="module")
def trained_vae(mnist5k_binary):
    """A dense VAE with a 2-D latent space, 3 epochs on binarized mnist5k (about 4 s)."""
    config = TrainConfig(
        dataset="mnist5k",
        latent_dim=2,
        hidden_units=(256,),
        epochs=3,
        batch_size=64,
        steps_per_execution=8,
    )
    data = mnist5k_binary
    model = build_compiled_model(
        config, data.data_shape, count_steps_per_epoch(config, data), x_train=data.x_train
    )
    model.fit(
        data.pipeline("train", config.batch_size, seed=0),
        epochs=config.epochs,
        verbose=0,
        shuffle=False,
    )
    return config, model


def test_trained_manifold_is_smooth_and_shows_many_digits(trained_vae, mnist5k_binary):
    """Measured with seeds 0 and 1, 3 and 5 epochs: neighbouring cells differ by
    2-3% of what two random cells do, and nearest class means (80% right on the
    test set) name 7-10 different digits among the 225 cells."""
    _, vae = trained_vae
    images, _ = latent_pictures.manifold_grid(vae, n=15)
    cells = images.reshape(15, 15, -1)
    neighbours = np.concatenate(
        [
            np.mean((cells[:, 1:] - cells[:, :-1]) ** 2, axis=-1).ravel(),
            np.mean((cells[1:] - cells[:-1]) ** 2, axis=-1).ravel(),
        ]
    )
    flat = cells.reshape(225, -1)
    pairs = np.random.default_rng(0).permutation(225)[:224].reshape(112, 2)
    random_pairs = np.mean((flat[pairs[:, 0]] - flat[pairs[:, 1]]) ** 2, axis=-1)
    assert neighbours.mean() < 0.1 * random_pairs.mean()
    data = mnist5k_binary
    means = np.stack([data.x_train[data.y_train == c].reshape(-1, 784).mean(0) for c in range(10)])
    nearest = np.argmin(((flat[:, None] - means[None]) ** 2).sum(-1), axis=1)
    assert len(set(nearest.tolist())) >= 5


def test_trained_interpolation_and_traversal_change_the_digit(trained_vae, mnist5k_binary):
    """Measured (seeds 0, 1): a 0 to a 1 over 10 steps; each step changes at most
    3.4-5.4% of the end-to-end squared difference (0.090-0.103), the midpoint
    is 0.010-0.012 from the nearer end; moving either latent dimension from
    -3 to +3 changes the image by 0.10-0.15."""
    _, vae = trained_vae
    data = mnist5k_binary
    a, b = latent_pictures.pair_of_different_classes(data.y_test, len(data.x_test))
    assert (data.y_test[a], data.y_test[b]) == (0, 1)
    images, _ = latent_pictures.interpolate(vae, data.x_test[a], data.x_test[b])
    path = images.reshape(10, -1)
    steps = np.mean((path[1:] - path[:-1]) ** 2, axis=-1)
    ends = np.mean((path[0] - path[-1]) ** 2)
    assert ends > 0.05
    assert steps.max() < 0.1 * ends
    assert min(np.mean((path[5] - path[0]) ** 2), np.mean((path[5] - path[-1]) ** 2)) > 0.004
    images, _, _ = latent_pictures.traverse(vae, data.x_test[a])
    rows = images.reshape(2, 9, -1)
    assert np.all(np.mean((rows[:, 0] - rows[:, -1]) ** 2, axis=-1) > 0.05)


def test_write_figures_draws_the_latent_pictures_of_a_vae(trained_vae, mnist5k_binary, tmp_path):
    config, vae = trained_vae
    write_figures(vae, config, mnist5k_binary, str(tmp_path))
    for name in ("manifold.png", "interpolation.png", "traversal.png", "samples.png"):
        assert (tmp_path / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", name
    assert "denoising.png" not in {p.name for p in tmp_path.iterdir()}


def test_latent_figures_are_written_for_images_and_vectors(tmp_path, digits):
    grid = np.broadcast_to(digits.x_test[:3, None], (3, 3, 8, 8, 1))
    coordinates = np.zeros((3, 3, 2))
    vectors = np.zeros((2, 2, 7))
    for name, figure in {
        "manifold.png": plots.manifold_figure(grid, coordinates, (0, 1)),
        "manifold_vectors.png": plots.manifold_figure(vectors, np.zeros((2, 2, 2))),
        "interpolation.png": plots.interpolation_figure(grid[0], [0.0, 0.5, 1.0]),
        "traversal.png": plots.traversal_figure(grid, [4, 0, 2], [-1.0, 0.0, 1.0]),
        "denoising.png": plots.denoising_figure(grid[0], grid[1], grid[2]),
    }.items():
        plots.save_figure(figure, tmp_path / name)
        assert (tmp_path / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
