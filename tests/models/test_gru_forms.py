"""The two GRU forms in the language models: "gru" (the book's) and
"gru-reset-after" (cuDNN's/PyTorch's), built, saved and reloaded by name."""

from pathlib import Path

import numpy as np
import pytest

from timelayers import models
from timelayers.layers import TimeGRU

from support.tiny_models import V, lm_data, scale_params

LEGACY_GRU = Path(__file__).parents[1] / "data" / "legacy_gru_rnnlm.safetensors"


def gru_layers(model):
    return [layer for layer in getattr(model, "rnns", [getattr(model, "rnn", None)])
            if isinstance(layer, TimeGRU)]


@pytest.mark.parametrize("make", [
    lambda cell: models.Rnnlm(V, 3, 4, cell=cell, rng=0),
    lambda cell: models.BetterRnnlm(V, 4, 4, cell=cell, rng=0),
], ids=["Rnnlm", "BetterRnnlm"])
def test_cell_name_picks_the_gru_form_and_the_same_seed_gives_the_same_weights(make):
    book, after = make("gru"), make("gru-reset-after")
    assert [g.reset_after for g in gru_layers(book)] == [False] * len(gru_layers(book))
    assert [g.reset_after for g in gru_layers(after)] == [True] * len(gru_layers(after))
    book_state, after_state = book.state_dict(), after.state_dict()
    extra = set(after_state) - set(book_state)
    assert extra and all(name.endswith(".bh") for name in extra)
    for name in extra:
        np.testing.assert_array_equal(after_state[name], 0)
    for name, value in book_state.items():
        np.testing.assert_array_equal(after_state[name], value)


def test_the_two_forms_compute_different_losses_from_the_same_weights():
    rng = np.random.default_rng(3)
    book = models.Rnnlm(V, 3, 4, cell="gru", dtype="float64", rng=0)
    scale_params(book, rng)
    after = models.Rnnlm(V, 3, 4, cell="gru-reset-after", dtype="float64", rng=0)
    after.load_state_dict({**book.state_dict(), "rnn.bh": np.zeros(12)})
    xs, ts = lm_data(rng)
    assert abs(book.forward(xs, ts) - after.forward(xs, ts)) > 1e-3


def test_checkpoint_round_trip_keeps_the_reset_after_form(tmp_path):
    model = models.Rnnlm(V, 3, 4, cell="gru-reset-after", dtype="float64", rng=0)
    scale_params(model, np.random.default_rng(4))
    model.save(tmp_path / "m.safetensors")
    loaded = models.Model.load(tmp_path / "m.safetensors")
    assert loaded.config.cell == "gru-reset-after" and loaded.rnn.reset_after
    np.testing.assert_array_equal(loaded.rnn.params[3], model.rnn.params[3])
    xs, ts = lm_data(np.random.default_rng(5))
    assert loaded.forward(xs, ts) == model.forward(xs, ts)


def test_a_gru_checkpoint_written_before_the_second_form_loads_as_the_book_s_gru():
    """``legacy_gru_rnnlm.safetensors``: Rnnlm(7, 3, 4, cell="gru", float64) with
    weights drawn from N(0, 1) (seed 1), saved by the library before the cell
    "gru-reset-after" existed; its loss on the data below was 2.4767102361726323."""
    model = models.Model.load(LEGACY_GRU)
    assert model.config.cell == "gru" and not model.rnn.reset_after
    assert "rnn.bh" not in model.state_dict()
    xs = np.array([[1, 2, 3, 4], [5, 6, 0, 1]])
    ts = np.array([[2, 3, 4, 5], [6, 0, 1, 2]])
    assert model.forward(xs, ts) == pytest.approx(2.4767102361726323, rel=1e-12)


def test_an_unknown_cell_names_the_choices():
    with pytest.raises(ValueError, match="gru-reset-after.*got 'gru2'"):
        models.Rnnlm(V, 3, 4, cell="gru2")
