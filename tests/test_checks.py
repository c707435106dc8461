"""The one table of named values (timelayers._checks.NAME_KINDS): every name's
kind, its boundaries, and the same rule wherever the name is taken (a recipe
option, an optimizer's hyper-parameter, a trainer's argument, a model's config
field, the command line)."""

import math

import numpy as np
import pytest

from timelayers import OptionError, optim
from timelayers._checks import (KINDS, MAY_BE_NONE, NAME_KINDS, RECIPE_OPTIONS, check_named,
                                check_options, check_value)
from timelayers.models import Rnnlm
from timelayers.training import Trainer

EDGES = {  # kind -> (accepted, refused)
    "positive int": ([1, 7, np.int64(3)], [0, -1, 1.0, True, "1", None]),
    "non-negative int": ([0, 5], [-1, 0.5, False]),
    "positive finite number": ([1e-9, 2, np.float32(0.5)], [0, -1, math.inf, math.nan, True]),
    "non-negative finite number": ([0, 0.0, 3.5], [-1e-9, math.inf, math.nan]),
    "number in [0, 1)": ([0, 0.5, 0.999], [1, -0.1, math.nan]),
    "number in [0, 1]": ([0, 1], [1.01, -0.01]),
    "number > 1": ([1.001, 4], [1, 0.5, math.inf]),
    "bool": ([True, False], [0, 1, "true"]),
    "str": (["lstm"], [1, None]),
}


def test_every_name_has_a_known_kind_and_every_kind_edges():
    assert set(NAME_KINDS.values()) <= set(KINDS)
    assert RECIPE_OPTIONS <= set(NAME_KINDS) and MAY_BE_NONE <= set(NAME_KINDS)
    assert set(EDGES) == set(KINDS)


@pytest.mark.parametrize("kind", list(EDGES))
def test_kinds_accept_and_refuse_their_edges(kind):
    accepted, refused = EDGES[kind]
    for value in accepted:
        check_value(kind, value, "x")
    for value in refused:
        with pytest.raises(OptionError, match=f"^x expected a {kind.replace('[', '.').replace(')', '.')}"):
            check_value(kind, value, "x")


def test_check_named_names_the_place_the_word_and_the_value():
    with pytest.raises(OptionError, match=r"^Here: argument 'hidden_size' expected a positive "
                                          r"int, got 0$"):
        check_named("Here", "argument", hidden_size=0)
    check_named("Here", "argument", max_grad=None, unknown_name=object())   # None allowed; unknown unchecked
    with pytest.raises(OptionError, match="'batch_size' expected a positive int, got None"):
        check_named("Here", "argument", batch_size=None)


def test_check_options_refuses_an_unknown_option():
    check_options({"lr": 0.1, "epochs": 2}, "recipe 'rnnlm'")
    with pytest.raises(OptionError, match=r"^recipe 'rnnlm': unknown option 'lr0'$"):
        check_options({"lr0": 0.1}, "recipe 'rnnlm'")


@pytest.mark.parametrize("make", [
    lambda v: optim.SGD(lr=v),
    lambda v: check_options({"lr": v}, "recipe"),
])
def test_a_name_means_one_kind_wherever_it_is_taken(make):
    make(0.0)                                  # lr 0: a schedule's end, a frozen run
    with pytest.raises(OptionError, match="'lr' expected a non-negative finite number"):
        make(-1.0)


def test_trainer_and_model_configs_read_the_same_table():
    with pytest.raises(OptionError, match="Trainer: argument 'max_grad' expected a positive "
                                          "finite number, got 0"):
        Trainer(Rnnlm(5, 2, 2, rng=0), optim.SGD(), max_grad=0)
    with pytest.raises(OptionError, match="Rnnlm: argument 'hidden_size' expected a positive int"):
        Rnnlm(5, 2, 0)
