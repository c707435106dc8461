"""Model.param_shapes(config): the names and shapes of a model's params from its
config alone, for every model class of the library, equal to the built model's;
and the layout they come from is what the constructor draws its params from."""

import numpy as np
import pytest

from timelayers import models
from timelayers.models import MODEL_REGISTRY, Model
from timelayers.models._layout import draw_params
from timelayers.layers.cells import CELLS

COUNTS = [3, 1, 4, 1, 5, 9, 2]

# (class name, constructor arguments): every class the loader can build, with each
# option that changes the params
CASES = [
    ("TwoLayerNet", dict(input_size=2, hidden_size=5, output_size=3)),
    ("SimpleCBOW", dict(vocab_size=7, hidden_size=3, window_size=2)),
    ("SimpleCBOW", dict(vocab_size=7, hidden_size=3, window_size=1)),
    ("SimpleSkipGram", dict(vocab_size=7, hidden_size=3, window_size=2)),
    ("CBOW", dict(vocab_size=7, hidden_size=3, window_size=2, counts=COUNTS)),
    ("SkipGram", dict(vocab_size=7, hidden_size=3, counts=COUNTS)),
    ("_NegativeSamplingModel", dict(vocab_size=7, hidden_size=3, counts=COUNTS)),
    ("_LanguageModel", {}),
    ("SimpleRnnlm", dict(vocab_size=7, wordvec_size=3, hidden_size=4)),
    *[("Rnnlm", dict(vocab_size=7, wordvec_size=3, hidden_size=4, cell=cell)) for cell in CELLS],
    *[("BetterRnnlm", dict(vocab_size=7, wordvec_size=4, hidden_size=4, num_layers=3, cell=cell))
      for cell in CELLS],
    ("Encoder", dict(vocab_size=7, wordvec_size=3, hidden_size=4)),
    ("Decoder", dict(vocab_size=7, wordvec_size=3, hidden_size=4)),
    ("PeekyDecoder", dict(vocab_size=7, wordvec_size=3, hidden_size=4)),
    ("Seq2seqBase", {}),
    ("Seq2seq", dict(vocab_size=7, wordvec_size=3, hidden_size=4)),
    ("PeekySeq2seq", dict(vocab_size=7, wordvec_size=3, hidden_size=4)),
    ("AttentionEncoder", dict(vocab_size=7, wordvec_size=3, hidden_size=4)),
    *[("AttentionDecoder", dict(vocab_size=7, wordvec_size=3, hidden_size=4, score=score))
      for score in ("dot", "general")],
    *[("AttentionSeq2seq", dict(vocab_size=7, wordvec_size=3, hidden_size=4, score=score))
      for score in ("dot", "general")],
    *[("TransformerLM", dict(vocab_size=7, d_model=8, num_heads=2, num_layers=2, ff_size=12,
                             max_len=5, positional=positional))
      for positional in ("sinusoidal", "learned")],
    *[("TransformerSeq2seq", dict(vocab_size=7, d_model=8, num_heads=2, encoder_layers=1,
                                  decoder_layers=2, ff_size=12, max_len=5, positional=positional))
      for positional in ("sinusoidal", "learned")],
]
# built only inside a TransformerLM or TransformerSeq2seq (their shapes are checked there)
PARTS = {"TokenInput", "TransformerEncoder", "TransformerDecoder"}


def case_id(case):
    name, kwargs = case
    options = [str(kwargs[k]) for k in ("cell", "score", "positional", "window_size") if k in kwargs]
    return "-".join([name, *options])


@pytest.mark.parametrize("name, kwargs", CASES, ids=[case_id(c) for c in CASES])
def test_param_shapes_are_the_built_model_s(name, kwargs):
    model_class = MODEL_REGISTRY[name]
    model = model_class(**kwargs)
    built = [(n, tuple(p.shape)) for n, p in model.state_dict().items()]
    config = {k: v for k, v in kwargs.items() if k != "rng"}
    assert list(model_class.param_shapes(config).items()) == built


# TransformerSeq2seq's decoder draws its own embedding, which the whole then ties to the
# encoder's (left out of the layout): a draw its layout does not list
DRAWN_BY_PARTS_ONLY = {"TransformerSeq2seq"}


DRAWING = [c for c in CASES if c[1] and c[0] not in DRAWN_BY_PARTS_ONLY]  # (not the bases)


@pytest.mark.parametrize("name, kwargs", DRAWING, ids=[case_id(c) for c in DRAWING])
def test_the_model_starts_with_the_arrays_its_layout_draws(name, kwargs):
    model = MODEL_REGISTRY[name](**kwargs, rng=7)
    drawn = draw_params(model, np.random.default_rng(7))
    built = model.state_dict()
    assert list(drawn) == list(built)
    for key, array in built.items():
        assert array.dtype == drawn[key].dtype and np.array_equal(array, drawn[key]), key


def test_every_model_class_of_the_library_is_covered():
    library = {name for name, cls in MODEL_REGISTRY.items()
               if cls.__module__.startswith("timelayers.")}
    assert library - PARTS == {name for name, _ in CASES}


@pytest.mark.parametrize("name", sorted(PARTS))
def test_the_parts_of_a_transformer_are_not_models_of_their_own(name):
    with pytest.raises(TypeError, match="built only as a part of a Transformer"):
        MODEL_REGISTRY[name].param_shapes({})


def test_the_defaults_are_the_constructor_s():
    assert models.SimpleRnnlm.param_shapes({"vocab_size": 5})["rnn.Wx"] == (100, 100)
    assert models.Rnnlm.param_shapes({"vocab_size": 5})["rnn.Wx"] == (100, 400)


def test_nothing_is_allocated_for_a_large_config():
    shapes = models.BetterRnnlm.param_shapes({"vocab_size": 10**12, "wordvec_size": 10**6,
                                              "hidden_size": 10**6, "num_layers": 1})
    assert shapes["embed.W"] == (10**12, 10**6) and shapes["rnns.0.Wx"] == (10**6, 4 * 10**6)


@pytest.mark.parametrize("config, error, match", [
    ({"vocab_size": 5, "colour": "red"}, TypeError, "colour"),
    ({"vocab_size": 5, "hidden_size": "50"}, TypeError, "'hidden_size' expected an int, got '50'"),
    ({"vocab_size": 5, "hidden_size": True}, TypeError, "'hidden_size' expected an int"),
    ({"vocab_size": -5}, ValueError, "'vocab_size' expected a non-negative int, got -5"),
    ({"vocab_size": 5, "cell": "gru2"}, ValueError, "'cell' expected one of .*got 'gru2'"),
])
def test_a_config_the_constructor_refuses_is_refused(config, error, match):
    with pytest.raises(error, match=match):
        models.Rnnlm.param_shapes(config)


def test_a_class_from_outside_the_library_does_not_state_its_shapes():
    class Outside(Model):
        def __init__(self, size=3):
            pass

    with pytest.raises(NotImplementedError, match="Outside does not state its param shapes"):
        Outside.param_shapes({})
