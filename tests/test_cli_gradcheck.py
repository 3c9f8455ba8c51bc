"""Tests for ``tinyvae gradcheck``: it passes, prints its table, and fails loudly (naming
the function) when a backward pass is wrong.
"""

import subprocess
import sys

import pytest

import tinyvae.models.parts.priors
from tinyvae.run.cli import main
from tinyvae.nn import Tanh

LABELS = ["Dense(5, 3, init=glorot)", "Dense(5, 3, init=he)", "ReLU", "LeakyReLU", "Tanh", "Sigmoid", "Softplus",
          "bernoulli_nll", "gaussian_nll", "gaussian_kl", "Reparameterize", "VAE (vae", "Autoencoder (ae",
          "Conv2d(2→3", "ConvTranspose2d(3→2", "Flatten", "Unflatten", "VAE, conv", "Autoencoder, conv"]


def rows(out):
    """The table's rows: label -> result ('ok' or 'FAIL')."""
    table = out.split("\n\n")[0].splitlines()
    assert table[0].split()[:2] == ["function", "params"]
    return {line[:44].strip(): line.split()[-1] for line in table[1:]}


def test_gradcheck_command_passes_and_prints_the_table(capsys):
    assert main(["gradcheck"]) == 0
    out = capsys.readouterr().out
    table = rows(out)
    for label in LABELS:
        assert any(row.startswith(label) for row in table), label
    assert set(table.values()) == {"ok"}
    assert f"{len(table)}/{len(table)} passed, worst relative error" in out


def test_gradcheck_command_runs_as_a_module_in_a_fresh_process():
    proc = subprocess.run([sys.executable, "-m", "tinyvae", "gradcheck"], capture_output=True, text=True,
                          timeout=300)  # a guard against a hang, not a measure of speed
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert set(rows(proc.stdout).values()) == {"ok"} and " passed, worst relative error " in proc.stdout


def test_gradcheck_command_verbose_prints_every_parameter(capsys):
    assert main(["gradcheck", "--verbose", "--seed", "3"]) == 0
    out = capsys.readouterr().out
    assert "gradient check of Reparameterize: PASS" in out and "log_var" in out


def test_a_wrong_backward_makes_gradcheck_exit_non_zero_and_name_the_function(monkeypatch, capsys):
    def backward_without_the_square(self, dy):
        return dy * (1 - self._cached())  # the planted bug: 1 − y instead of 1 − y²

    monkeypatch.setattr(Tanh, "backward", backward_without_the_square)
    assert main(["gradcheck"]) == 1
    out = capsys.readouterr().out
    table = rows(out)
    assert table["Tanh"] == "FAIL"
    assert table["Sigmoid"] == "ok" and table["Reparameterize"] == "ok"
    assert "gradient check of Tanh: FAIL" in out and "<-- wrong" in out
    assert "passed, worst relative error" in out and not out.count(f"{len(table)}/{len(table)} passed")


def test_a_wrong_kl_gradient_inside_the_model_fails_exactly_the_vae_and_cvae_checks(monkeypatch, capsys):
    original = tinyvae.models.parts.priors.gaussian_kl

    def kl_with_the_wrong_sign(mu, log_var, *, validate=True):
        kl, dmu, dlog_var = original(mu, log_var, validate=validate)
        return kl, -dmu, dlog_var

    monkeypatch.setattr(tinyvae.models.parts.priors, "gaussian_kl", kl_with_the_wrong_sign)
    assert main(["gradcheck"]) == 1
    table = rows(capsys.readouterr().out)
    assert [label for label, result in table.items() if result == "FAIL"] == [
        label for label in table if label.startswith(("VAE", "CVAE"))]  # the CVAE's KL is the same prior part


def test_gradcheck_refuses_unknown_flags_naming_them(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["gradcheck", "--tolerance", "1e-3"])
    assert exit_info.value.code == 2
    assert "unrecognized arguments: --tolerance" in capsys.readouterr().err
