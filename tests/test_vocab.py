import json

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from timelayers.errors import DataError, ShapeError, TimelayersError
from timelayers.vocab import UnknownWordError, Vocabulary

WORDS = "you say goodbye and i say hello .".split()


def test_ids_in_order_of_first_occurrence():
    vocab = Vocabulary(WORDS)
    assert vocab.word_to_id == {"you": 0, "say": 1, "goodbye": 2, "and": 3, "i": 4, "hello": 5, ".": 6}
    assert vocab.id_to_word == {i: w for w, i in vocab.word_to_id.items()}
    assert len(vocab) == 7
    assert vocab.words == ["you", "say", "goodbye", "and", "i", "hello", "."]
    assert list(vocab) == vocab.words
    assert "hello" in vocab and "bye" not in vocab


def test_add_returns_existing_or_new_id():
    vocab = Vocabulary()
    assert vocab.add("a") == 0
    assert vocab.add("b") == 1
    assert vocab.add("a") == 0
    assert len(vocab) == 2 and vocab["b"] == 1
    with pytest.raises(TypeError):
        vocab.add(3)


def test_encode_decode():
    vocab = Vocabulary(WORDS)
    ids = vocab.encode(WORDS)
    assert ids.dtype == np.int32 and ids.shape == (8,)
    assert ids.tolist() == [0, 1, 2, 3, 4, 1, 5, 6]
    assert vocab.decode(ids) == WORDS
    assert vocab.decode([6, 0]) == [".", "you"]
    assert vocab.encode(w for w in ["i", "you"]).tolist() == [4, 0]  # any iterable
    assert vocab.encode([]).shape == (0,)
    assert vocab.decode(np.array([], dtype=np.int64)) == []


def test_characters():
    vocab = Vocabulary("16+75  _91  ")
    assert vocab.words == ["1", "6", "+", "7", "5", " ", "_", "9"]
    assert vocab.encode("_19").tolist() == [6, 0, 7]
    assert "".join(vocab.decode(vocab.encode("57+1"))) == "57+1"


def test_unknown_word_error_names_the_word():
    vocab = Vocabulary(WORDS)
    with pytest.raises(UnknownWordError) as info:
        vocab.encode(["you", "foo"])
    err = info.value
    assert isinstance(err, KeyError) and isinstance(err, TimelayersError)
    assert err.word == "foo" and err.size == 7
    assert str(err) == "word 'foo' is not in the vocabulary (7 words)"
    with pytest.raises(KeyError, match="'bar'"):
        vocab["bar"]


def test_decode_errors():
    vocab = Vocabulary(WORDS)
    with pytest.raises(DataError, match="id 7 is out of range"):
        vocab.decode([0, 7])
    with pytest.raises(DataError, match="id -1"):
        vocab.decode([-1])
    with pytest.raises(ShapeError, match=r"\(2, 1\)"):
        vocab.decode(np.zeros((2, 1), dtype=int))
    with pytest.raises(DataError, match="integers"):
        vocab.decode(np.array([0.0, 1.0]))


def test_equality_and_repr():
    assert Vocabulary(WORDS) == Vocabulary(WORDS)
    assert Vocabulary(WORDS) != Vocabulary(reversed(WORDS))
    assert Vocabulary(WORDS) != WORDS
    assert "7 words" in repr(Vocabulary(WORDS))


def test_dict_round_trip():
    vocab = Vocabulary(WORDS)
    data = vocab.to_dict()
    assert data["words"] == vocab.words
    assert json.loads(json.dumps(data)) == data
    assert Vocabulary.from_dict(data) == vocab


@pytest.mark.parametrize(
    "data",
    [{}, {"words": "abc"}, {"words": [1, 2]}, {"words": ["a", "a"]}, ["a", "b"]],
)
def test_from_dict_rejects_bad_data(data):
    with pytest.raises(DataError):
        Vocabulary.from_dict(data)


def test_save_load(tmp_path):
    vocab = Vocabulary(WORDS + ["naïve", "日本"])
    path = tmp_path / "vocab.json"
    vocab.save(path)
    assert Vocabulary.load(path) == vocab
    assert sorted(p.name for p in tmp_path.iterdir()) == ["vocab.json"]  # no temp file left
    Vocabulary(["x"]).save(path)  # overwrites
    assert Vocabulary.load(path).words == ["x"]


def test_load_drops_a_byte_order_mark(tmp_path):
    path = tmp_path / "bom.json"
    path.write_bytes(Vocabulary(["a", "b"]).to_json().encode("utf-8-sig"))
    assert Vocabulary.load(path).words == ["a", "b"]


def test_load_corrupt_file_names_it(tmp_path):
    path = tmp_path / "broken.json"
    path.write_text('{"words": ["a", ')
    with pytest.raises(DataError, match="broken.json"):
        Vocabulary.load(path)
    path.write_text('{"words": ["a", "a"]}')
    with pytest.raises(DataError, match="repeated"):
        Vocabulary.load(path)


@given(st.lists(st.text(min_size=1, max_size=5), max_size=30))
def test_encode_decode_round_trip(words):
    vocab = Vocabulary(words)
    assert len(vocab) == len(set(words))
    assert vocab.decode(vocab.encode(words)) == words
    assert Vocabulary.from_dict(vocab.to_dict()) == vocab
