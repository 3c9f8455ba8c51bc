"""Tests for tinyvae.evaluation.plots: every picture is written as a PNG, the manifold needs Z = 2, a run folder
gets its set of pictures, and the ``sample`` and ``plot`` commands work from the command line."""

from __future__ import annotations

import json
from statistics import NormalDist

import matplotlib
import numpy as np
import pytest
from matplotlib.figure import Figure

from tinyvae import VAE, Autoencoder, cli, data
from tinyvae.evaluation.evaluate import posterior_means
from tinyvae.evaluation.plots import (inverse_normal_cdf_grid, most_active_dimensions, plot_ae_vs_vae, plot_curves,
                           plot_interpolation, plot_latent, plot_manifold, plot_reconstructions, plot_samples,
                           plot_traversals, traversal_codes, write_run_pictures)

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def assert_png(path):
    assert path.is_file() and path.stat().st_size > 1000
    assert path.read_bytes()[:8] == PNG_MAGIC


def metrics_rows(epochs=3):
    return [{"epoch": e, "train_loss": 200.0 / e, "train_recon": 190.0 / e, "train_kl": 10.0 - e,
             "test_loss": 205.0 / e, "test_recon": 194.0 / e, "test_kl": 11.0 - e, "beta": 1.0, "seconds": 1.0}
            for e in range(1, epochs + 1)]


@pytest.fixture(scope="module")
def digits():
    x, y = data.load_split("test")
    return x[:300], y[:300]


@pytest.fixture(scope="module")
def vae2():
    return VAE(input_dim=784, hidden=(32,), latent=2, seed=0)


def make_run(folder, model, binarize="dynamic", metrics=True):
    """A run folder laid out as tinyvae.run.train writes it: config.json, metrics.jsonl, checkpoint.npz."""
    folder.mkdir(parents=True)
    model.save(folder / "checkpoint.npz")
    config = {"binarize": binarize, "seed": 0, "data": None, "model": model.config.to_dict()}
    (folder / "config.json").write_text(json.dumps(config))
    if metrics:
        (folder / "metrics.jsonl").write_text("".join(json.dumps(row) + "\n" for row in metrics_rows()))
    return folder


@pytest.mark.parametrize("draw", [
    pytest.param(lambda m, x, y, p: plot_samples(m, n=16, path=p), id="samples"),
    pytest.param(lambda m, x, y, p: plot_reconstructions(m, x, n=8, path=p), id="reconstructions"),
    pytest.param(lambda m, x, y, p: plot_curves(metrics_rows(), path=p), id="curves"),
    pytest.param(lambda m, x, y, p: plot_latent(m, x, y, path=p), id="latent"),
    pytest.param(lambda m, x, y, p: plot_manifold(m, n=6, path=p), id="manifold"),
    pytest.param(lambda m, x, y, p: plot_interpolation(m, x[0], x[1], steps=5, path=p), id="interpolation"),
])
def test_every_plot_writes_a_png_and_returns_its_figure(draw, vae2, digits, tmp_path):
    path = tmp_path / "sub" / "picture.png"
    backend_before = matplotlib.get_backend()
    fig = draw(vae2, *digits, path)
    assert isinstance(fig, Figure)
    assert_png(path)
    assert matplotlib.get_backend() == backend_before  # a notebook's backend is left alone


def test_plots_take_float_images_and_return_a_figure_without_writing(vae2, digits):
    x = data.to_float(digits[0][:20])
    assert isinstance(plot_reconstructions(vae2, x, n=4), Figure)
    assert isinstance(plot_latent(vae2, x, digits[1][:20]), Figure)


def test_latent_plot_projects_more_than_two_dimensions_with_pca_and_says_so(digits, tmp_path):
    model = VAE(input_dim=784, hidden=(32,), latent=5, seed=0)
    fig = plot_latent(model, *digits, path=tmp_path / "latent.png")
    assert "PCA" in fig.axes[0].get_title()
    two = VAE(input_dim=784, hidden=(8,), latent=2)
    assert "two latent dimensions" in plot_latent(two, *digits).axes[0].get_title()
    ae = Autoencoder(input_dim=784, hidden=(32,), latent=3, seed=0)
    assert "codes" in plot_latent(ae, *digits).axes[0].get_title()


def test_manifold_refuses_a_latent_space_that_is_not_two_dimensional():
    with pytest.raises(ValueError, match=r"Z = 2.*Z = 5"):
        plot_manifold(VAE(input_dim=784, hidden=(8,), latent=5))


def test_manifold_grid_has_equal_prior_mass_between_its_points():
    grid = inverse_normal_cdf_grid(5)
    # Φ⁻¹ of 0.05, 0.275, 0.5, 0.725, 0.95
    np.testing.assert_allclose(grid, [-1.6448536, -0.5977601, 0.0, 0.5977601, 1.6448536], atol=1e-6)
    np.testing.assert_allclose(np.diff([NormalDist().cdf(z) for z in grid]), 0.225)


def test_ae_vs_vae_comparison_writes_a_png(digits, tmp_path):
    ae = Autoencoder(input_dim=784, hidden=(32,), latent=2, seed=0)
    vae = VAE(input_dim=784, hidden=(32,), latent=2, seed=1)
    fig = plot_ae_vs_vae(ae, vae, digits[0], n=6, path=tmp_path / "cmp.png")
    rows = [label.get_text() for label in fig.axes[0].get_yticklabels()]
    assert rows == ["input", "AE: reconstruction", "VAE: reconstruction", "AE: z ~ N(0, I)", "VAE: z ~ N(0, I)"]
    assert_png(tmp_path / "cmp.png")


def test_write_run_pictures_writes_every_picture_of_a_run(vae2, tmp_path):
    run = make_run(tmp_path / "run", vae2)
    paths = write_run_pictures(run)
    names = ["samples.png", "reconstructions.png", "curves.png", "latent.png", "interpolation.png", "manifold.png"]
    assert [p.name for p in paths] == names
    for path in paths:
        assert path.parent == run
        assert_png(path)


def curve_titles(fig):
    return [ax.get_title() for ax in fig.axes]


def ae_metrics_rows(epochs=3):
    """What tinyvae.run.train writes for an autoencoder: the loss is the reconstruction, the KL is 0."""
    return [dict(row, train_loss=row["train_recon"], test_loss=row["test_recon"], train_kl=0.0, test_kl=0.0)
            for row in metrics_rows(epochs)]


def test_curves_of_a_vae_show_the_negative_elbo_and_the_kl():
    titles = curve_titles(plot_curves(metrics_rows()))
    assert len(titles) == 3 and titles[0] == "negative ELBO" and any("KL" in t for t in titles)


def test_curves_of_an_autoencoder_run_neither_call_the_loss_an_elbo_nor_draw_a_kl_panel(tmp_path):
    run = tmp_path / "ae-run"
    run.mkdir()
    (run / "config.json").write_text(json.dumps({"model": "ae", "binarize": "none"}))
    (run / "metrics.jsonl").write_text("".join(json.dumps(row) + "\n" for row in ae_metrics_rows()))
    for fig in (plot_curves(run), plot_curves(run / "metrics.jsonl"), plot_curves(ae_metrics_rows(), model="ae")):
        titles = curve_titles(fig)
        assert len(titles) == 1, titles
        assert not any("ELBO" in t or "KL(" in t for t in titles), titles
        assert "reconstruction" in titles[0]
    with pytest.raises(ValueError, match="model must be 'vae' or 'ae'"):
        plot_curves(ae_metrics_rows(), model="iwae?")


def test_write_run_pictures_draws_an_autoencoder_run_as_an_autoencoder(tmp_path, monkeypatch):
    from tinyvae import plots

    drawn = []
    real = plots.plot_curves
    monkeypatch.setattr(plots, "plot_curves", lambda *a, **k: drawn.append(real(*a, **k)) or drawn[-1])
    ae = Autoencoder(input_dim=784, hidden=(16,), latent=2, seed=0)
    run = make_run(tmp_path / "run", ae, binarize="none")
    (run / "metrics.jsonl").write_text("".join(json.dumps(row) + "\n" for row in ae_metrics_rows()))
    write_run_pictures(run)
    assert_png(run / "curves.png")
    assert len(drawn) == 1 and curve_titles(drawn[0]) == ["reconstruction loss (autoencoder: no KL term)"]


def test_sample_command_writes_the_grid(vae2, tmp_path, capsys):
    run = make_run(tmp_path / "run", vae2)
    assert cli.main(["sample", str(run), "--n", "9", "--seed", "3"]) == 0
    assert_png(run / "samples.png")
    out = tmp_path / "elsewhere" / "s.png"
    assert cli.main(["sample", str(run / "checkpoint.npz"), "--out", str(out)]) == 0
    assert_png(out)
    assert str(out) in capsys.readouterr().out


def test_plot_command_writes_a_run_without_manifold_unless_z_is_2_nor_curves_without_metrics(tmp_path, capsys):
    run = make_run(tmp_path / "run", VAE(input_dim=784, hidden=(16,), latent=3), binarize="none", metrics=False)
    assert cli.main(["plot", str(run)]) == 0
    written = {line.split("/")[-1] for line in capsys.readouterr().out.split()}
    assert written == {"samples.png", "reconstructions.png", "latent.png", "interpolation.png"}
    assert not (run / "manifold.png").exists()


def test_plot_command_compares_an_autoencoder_with_a_vae(vae2, tmp_path):
    vae_run = make_run(tmp_path / "vae", vae2)
    ae_run = make_run(tmp_path / "ae", Autoencoder(input_dim=784, hidden=(32,), latent=2))
    out = tmp_path / "cmp.png"
    assert cli.main(["plot", "--ae", str(ae_run), "--vae", str(vae_run), "--out", str(out), "--n", "5"]) == 0
    assert_png(out)


def test_plot_command_needs_a_run_or_both_models(tmp_path, capsys):
    for argv in (["plot"], ["plot", "--ae", "a"], ["plot", "run", "--ae", "a", "--vae", "b"]):
        with pytest.raises(SystemExit) as exit_info:
            cli.main(argv)
        assert exit_info.value.code == 2
    assert cli.main(["sample", str(tmp_path / "missing.npz")]) == 1
    assert "no such file" in capsys.readouterr().err
    assert cli.main(["plot", str(tmp_path)]) == 1  # a folder with no checkpoint
    assert "no checkpoint.npz" in capsys.readouterr().err


# --------------------------------------------------------------------------- latent traversals


def test_traversal_codes_sweep_one_coordinate_over_three_standard_deviations_and_keep_the_rest():
    means = np.random.default_rng(0).normal(size=(50, 4)) * [0.1, 2.0, 1.0, 0.5]
    t = np.linspace(-3, 3, 7)
    z = traversal_codes(means, 1, 2, t).reshape(2, 7, 4)
    for row in range(2):
        np.testing.assert_array_equal(z[row][:, [0, 2, 3]], np.repeat(means[row:row + 1, [0, 2, 3]], 7, axis=0))
        np.testing.assert_allclose(z[row][:, 1], means[:, 1].mean() + t * means[:, 1].std())
    assert z[0, 0, 1] == pytest.approx(means[:, 1].mean() - 3 * means[:, 1].std())


def test_the_most_active_dimensions_are_those_whose_posterior_means_vary_most():
    means = np.random.default_rng(1).normal(size=(100, 5)) * [0.01, 3.0, 0.0, 1.0, 2.0]
    assert most_active_dimensions(means, 3) == [1, 4, 3]


def test_traversals_skip_a_collapsed_dimension(digits, tmp_path):
    model = VAE(input_dim=784, hidden=(16,), latent=3, seed=0)
    model.encoder.layers[-1].params["W"][:, 0] = 0  # μ_0 no longer depends on x: dimension 0 is collapsed
    model.encoder.layers[-1].params["b"][0] = 0.3
    x = data.to_float(digits[0][:60])
    means = posterior_means(model, x)
    assert np.ptp(means[:, 0]) == 0
    assert 0 not in most_active_dimensions(means, 2)
    fig = plot_traversals(model, x, dims=2, digits=2, steps=5, path=tmp_path / "t.png")
    assert isinstance(fig, Figure) and len(fig.axes) == 2
    assert_png(tmp_path / "t.png")


def test_traversals_refuse_impossible_grids_and_dimensions(vae2, digits):
    for kwargs in (dict(steps=1), dict(digits=0), dict(span=0), dict(dims=[5])):
        with pytest.raises(ValueError, match="plot_traversals"):
            plot_traversals(vae2, digits[0][:10], **kwargs)


def test_plot_command_traverse_writes_only_the_traversals(tmp_path, capsys):
    run = make_run(tmp_path / "run", VAE(input_dim=784, hidden=(16,), latent=4), binarize="none", metrics=False)
    assert cli.main(["plot", str(run), "--traverse"]) == 0
    assert capsys.readouterr().out.split() == [str(run / "traversals.png")]
    assert_png(run / "traversals.png")
    assert not (run / "samples.png").exists()
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["plot", "--traverse", "--ae", str(run), "--vae", str(run)])
    assert exit_info.value.code == 2
