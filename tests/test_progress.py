"""Progress bars: one per stage of a long fit, on a terminal only, and only when asked."""

from __future__ import annotations

import sys

import numpy as np
import pytest

from switchman.estimates import Estimates
from switchman.estimators.base import RoutingCosts
from switchman.estimators.knn import KNNEstimator
from switchman.estimators.prior import PriorEstimator
from switchman.estimators.stacking import StackingEstimator
from switchman.eval.sweep import sweep_picks
from switchman.features import Features
from switchman.progress import showing, stage

N, M = 60, 3


def _fit_stacking() -> None:
    rng = np.random.default_rng(0)
    x = rng.standard_normal((N, 8)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    quality = (rng.random((N, M)) < [0.4, 0.6, 0.8]).astype(float)
    cost = np.tile([0.001, 0.01, 0.1], (N, 1))
    StackingEstimator([PriorEstimator(), KNNEstimator(k=5)]).fit(
        Features(x, np.full(N, 5.0)), quality, RoutingCosts(cost))


def _terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    """The captured stderr passes for a terminal. Called in the test body: capsys puts its
    stream in place only when the test itself starts."""
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)


def test_a_fit_shows_a_bar_per_family_and_stage(capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    _terminal(monkeypatch)
    with showing():
        _fit_stacking()
    err = capsys.readouterr().err
    # the prior's out-of-fold predictions are its in-sample means: no folds, no bar
    assert "out-of-fold 1:knn" in err and "5/5" in err
    assert "out-of-fold 0:prior" not in err
    assert "choosing the blend" in err and "final fit" in err


def test_no_bars_unless_a_command_asks(capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    _terminal(monkeypatch)
    _fit_stacking()
    with showing(False):
        _fit_stacking()
    assert capsys.readouterr().err == ""


def test_no_bars_when_stderr_is_not_a_terminal(capsys: pytest.CaptureFixture[str]) -> None:
    with showing():
        _fit_stacking()
    assert capsys.readouterr().err == ""


def test_a_named_sweep_shows_its_points(capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    _terminal(monkeypatch)
    estimates = Estimates(("a", "b"), np.array([[0.2, 0.9]] * 4), np.array([[0.01, 1.0]] * 4))
    with showing():
        sweep_picks(estimates, 7)  # a sweep inside a fit: silent
        assert capsys.readouterr().err == ""
        weights, picks = sweep_picks(estimates, 7, progress="sweep mine")
    err = capsys.readouterr().err
    assert "sweep mine" in err and f"{len(weights)}/{len(weights)}" in err
    assert picks.shape == (len(weights), 4)


def test_a_stage_asked_directly_shows_without_a_command(
        capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    _terminal(monkeypatch)
    with stage("by hand", 2, show=True) as bar:
        bar.update(2)
    with stage("silent", 2) as bar:
        bar.update(2)
    err = capsys.readouterr().err
    assert "by hand" in err and "silent" not in err
