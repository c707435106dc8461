import datetime
import re

import numpy as np
import pytest

from timelayers.datasets import (
    load_addition,
    load_dates,
    load_sequence,
    make_addition,
    make_dates,
    reverse_questions,
    write_sequence,
)
from timelayers.errors import DataError, ShapeError
from timelayers.vocab import Vocabulary

# Written out here so the checks do not share the library's tables (nor the locale's).
MONTHS = "january february march april may june july august september october november december".split()
WEEKDAYS = "monday tuesday wednesday thursday friday saturday sunday".split()
BOOK_EXAMPLES = [
    ("August 19, 2003", "2003-08-19"),
    ("september 27, 1994", "1994-09-27"),
    ("JUN 17, 2013", "2013-06-17"),
    ("Sep 30, 1981", "1981-09-30"),
    ("Wednesday, February 26, 1997", "1997-02-26"),
    ("TUESDAY, SEPTEMBER 25, 1984", "1984-09-25"),
    ("monday, september 13, 2004", "2004-09-13"),
    ("2/10/93", "1993-02-10"),
    ("10/31/90", "1990-10-31"),
    ("6/3/73", "1973-06-03"),
]
TEXT_DATE = re.compile(r"^(?:([A-Za-z]+), )?([A-Za-z]+) (\d{1,2}), (\d{4})$")
NUMERIC_DATE = re.compile(r"^([1-9]\d?)/([1-9]\d?)/(\d\d)$")


def parse_human(human):
    """Parse a human date independently of the library; return (date, form)."""
    m = NUMERIC_DATE.match(human)
    if m:
        month, day, yy = map(int, m.groups())
        year = 1900 + yy if yy >= 70 else 2000 + yy
        return datetime.date(year, month, day), ("numeric",)
    m = TEXT_DATE.match(human)
    assert m, human
    weekday, month, day, year = m.groups()
    case = "lower" if human.islower() else "upper" if human.isupper() else "title"
    if case == "title":
        assert all(w[0].isupper() and w[1:].islower() for w in re.findall(r"[A-Za-z]+", human))
    full = month.lower() in MONTHS
    index = MONTHS.index(month.lower()) if full else [m[:3] for m in MONTHS].index(month.lower())
    date = datetime.date(int(year), index + 1, int(day))
    if weekday is not None:
        assert weekday.lower() == WEEKDAYS[date.weekday()], human
    return date, ("full" if full else "abbr", weekday is not None, case)


@pytest.mark.parametrize("human, answer", BOOK_EXAMPLES)
def test_parser_reads_the_book_examples(human, answer):
    assert parse_human(human)[0].isoformat() == answer


# -- addition --------------------------------------------------------------------------
def test_addition_format():
    lines = make_addition(3000, np.random.default_rng(0))
    assert len(lines) == 3000
    for line in lines:
        assert len(line) == 12 and line[7] == "_" and line.count("_") == 1
        question, answer = line[:7], line[8:]
        assert question == question.rstrip().ljust(7) and not question.startswith(" ")
        assert answer == answer.rstrip().ljust(4) and not answer.startswith(" ")
        a, b = map(int, question.split("+"))
        assert 0 <= a <= 999 and 0 <= b <= 999
        assert a + b == int(answer)
    sums = [int(line[8:]) for line in lines]
    assert max(sums) >= 1000 and min(sums) < 100  # four-digit and short answers both occur


def test_addition_questions_are_distinct_pairs_in_the_books_mix():
    lines = make_addition(50000, np.random.default_rng(5))  # the mix depends on n
    pairs = [tuple(sorted(map(int, line[:7].split("+")))) for line in lines]
    assert len(set(pairs)) == len(pairs)  # neither a+b twice nor both a+b and b+a
    digits = np.array([len(operand) for line in lines for operand in line[:7].rstrip().split("+")])
    # the book's addition.txt: 9.7% / 32.5% / 57.8% one-, two-, three-digit operands
    shares = [np.mean(digits == d) for d in (1, 2, 3)]
    assert shares == pytest.approx([0.097, 0.325, 0.578], abs=0.02)


def test_addition_asks_for_at_most_the_distinct_pairs():
    with pytest.raises(ValueError, match="at most 500500"):
        make_addition(500501, np.random.default_rng(0))


def test_addition_example_layout():
    line = "16+75".ljust(7) + "_" + "91".ljust(4)
    assert line == "16+75  _91  "
    (x, t), _, vocab = load_sequence([line], seed=None, test_ratio=0)
    assert "".join(vocab.decode(x[0])) == "16+75  " and "".join(vocab.decode(t[0])) == "_91  "


# -- dates -------------------------------------------------------------------------------
def test_dates_format_and_values():
    lines = make_dates(3000, np.random.default_rng(1))
    forms = set()
    for line in lines:
        assert len(line) == 40 and line[29] == "_"
        human, answer = line[:29].rstrip(), line[30:]
        assert line[:29] == human.ljust(29) and not human.startswith(" ")
        assert re.fullmatch(r"\d{4}-\d\d-\d\d", answer)
        date, form = parse_human(human)
        assert date.isoformat() == answer
        assert datetime.date(1970, 1, 1) <= date <= datetime.date(2017, 12, 31)
        forms.add(form)
    every_form = {("numeric",)} | {
        (month, weekday, case)
        for month in ("full", "abbr")
        for weekday in (False, True)
        for case in ("lower", "title", "upper")
    }
    assert forms == every_form


def test_dates_span_the_whole_range():
    years = {int(line[30:34]) for line in make_dates(5000, np.random.default_rng(2))}
    assert years == set(range(1970, 2018))


@pytest.mark.parametrize("make", [make_addition, make_dates])
def test_generators_are_deterministic(make):
    assert make(200, np.random.default_rng(7)) == make(200, np.random.default_rng(7))
    assert make(200, np.random.default_rng(7)) != make(200, np.random.default_rng(8))
    assert make(0, np.random.default_rng(7)) == []
    with pytest.raises(ValueError, match="n must"):
        make(-1, np.random.default_rng(7))


# -- loading ---------------------------------------------------------------------------
def test_load_sequence_shapes_and_vocabulary():
    lines = make_addition(1000, np.random.default_rng(3))
    (x, t), (x_test, t_test), vocab = load_sequence(lines)
    assert x.shape == (900, 7) and t.shape == (900, 5)
    assert x_test.shape == (100, 7) and t_test.shape == (100, 5)
    assert x.dtype == t.dtype == np.int32
    assert vocab == Vocabulary("".join(lines))  # characters in order of first occurrence
    assert len(vocab) == 13  # digits, '+', ' ', '_'
    assert (t[:, 0] == vocab["_"]).all() and (t_test[:, 0] == vocab["_"]).all()


def test_load_sequence_shuffles_reproducibly_from_the_seed():
    lines = make_addition(500, np.random.default_rng(4))
    (x, t), (xt, tt), vocab = load_sequence(lines, seed=None, test_ratio=0)
    assert ["".join(vocab.decode(row)) for row in np.concatenate([x, t], axis=1)] == lines
    (xs, ts), (xst, tst), _ = load_sequence(lines, seed=11)
    perm = np.random.default_rng(11).permutation(500)
    np.testing.assert_array_equal(np.concatenate([xs, xst]), x[perm])
    np.testing.assert_array_equal(np.concatenate([ts, tst]), t[perm])
    (xs2, _), _, _ = load_sequence(lines, seed=11)
    np.testing.assert_array_equal(xs, xs2)
    (xs3, _), _, _ = load_sequence(lines, seed=12)
    assert not np.array_equal(xs, xs3)


def test_test_ratio():
    lines = make_addition(99, np.random.default_rng(0))
    (x, _), (x_test, _), _ = load_sequence(lines, test_ratio=0.25)
    assert len(x_test) == 24 and len(x) == 75
    for bad in (-0.1, 1.0):
        with pytest.raises(ValueError, match="test_ratio"):
            load_sequence(lines, test_ratio=bad)


@pytest.mark.parametrize("make", [make_addition, make_dates])
def test_write_load_round_trip(tmp_path, make):
    lines = make(300, np.random.default_rng(5))
    path = tmp_path / "data.txt"
    write_sequence(path, lines)
    assert path.read_text().splitlines() == lines
    assert [p.name for p in tmp_path.iterdir()] == ["data.txt"]
    from_file = load_sequence(path)
    from_lines = load_sequence(lines)
    assert from_file[2] == from_lines[2]
    for a, b in zip(from_file[:2], from_lines[:2]):
        np.testing.assert_array_equal(a[0], b[0])
        np.testing.assert_array_equal(a[1], b[1])
    (x, t), _, vocab = load_sequence(str(path), seed=None, test_ratio=0)
    assert ["".join(vocab.decode(q)) + "".join(vocab.decode(a)) for q, a in zip(x, t)] == lines


def test_windows_line_endings_and_trailing_blank_lines(tmp_path):
    path = tmp_path / "crlf.txt"
    path.write_bytes(b"1+1    _2   \r\n2+2    _4   \r\n\r\n")
    (x, t), _, _ = load_sequence(path, seed=None, test_ratio=0)
    assert x.shape == (2, 7) and t.shape == (2, 5)


def test_a_byte_order_mark_is_dropped(tmp_path):
    path = tmp_path / "bom.txt"
    path.write_bytes("1+1    _2   \n2+2    _4   \n".encode("utf-8-sig"))
    (x, t), _, vocab = load_sequence(path, seed=None, test_ratio=0)
    assert x.shape == (2, 7) and "\ufeff" not in vocab


def test_a_file_that_is_not_utf8_is_named(tmp_path):
    path = tmp_path / "latin1.txt"
    path.write_bytes("caf\xe9+1 _2   \n".encode("latin-1"))
    with pytest.raises(DataError, match=r"latin1\.txt: not UTF-8 text \(byte 0xe9 at offset 3"):
        load_sequence(path)


@pytest.mark.parametrize("lines, where", [(["_12+3", "_45+6"], "first column, so the question"),
                                          (["12+3_", "45+6_"], "last column, so the answer")])
def test_a_separator_at_either_end_is_refused(tmp_path, lines, where):
    path = tmp_path / "edge.txt"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(DataError, match=rf"edge\.txt, line 1: '_' is in the {where}"):
        load_sequence(path)


def test_any_separator_column():
    lines = ["ab_xyz", "cd_zzz", "ee_a_b"]  # '_' inside an answer is just a character
    (x, t), _, vocab = load_sequence(lines, seed=None, test_ratio=0)
    assert x.shape == (3, 2) and t.shape == (3, 4)
    assert "".join(vocab.decode(t[2])) == "_a_b"


def test_malformed_lines_name_the_line_and_file(tmp_path):
    path = tmp_path / "bad.txt"
    path.write_text("1+1    _2   \n2+2    _4   \n3+3   _6    \n")
    with pytest.raises(DataError, match=r"bad\.txt, line 3"):
        load_sequence(path)
    path.write_text("1+1    _2   \n2+2    _4\n")
    with pytest.raises(DataError, match=r"bad\.txt, line 2: expected 12 characters"):
        load_sequence(path)
    path.write_text("1+1 2\n")
    with pytest.raises(DataError, match=r"bad\.txt, line 1: no '_'"):
        load_sequence(path)
    path.write_text("")
    with pytest.raises(DataError, match="no lines"):
        load_sequence(path)
    with pytest.raises(DataError, match="line 2"):
        load_sequence(["a_b", "ab_c"])


def test_given_vocabulary(tmp_path):
    vocab = Vocabulary("0123456789+_ ")
    (x, t), _, used = load_sequence(["1+1 _2 "], seed=None, test_ratio=0, vocab=vocab)
    assert used is vocab and x.tolist() == [[1, 10, 1, 12]]
    with pytest.raises(DataError, match="line 2: character '-'"):
        load_sequence(["1+1 _2 ", "1-1 _0 "], vocab=vocab)


def test_write_sequence_rejects_newlines(tmp_path):
    with pytest.raises(DataError, match="line 2"):
        write_sequence(tmp_path / "x.txt", ["a_b", "c\n_d"])
    assert list(tmp_path.iterdir()) == []


def test_reverse_questions():
    x = np.arange(12, dtype=np.int32).reshape(3, 4)
    r = reverse_questions(x)
    np.testing.assert_array_equal(r, x[:, ::-1])
    assert r.flags.c_contiguous and not np.shares_memory(r, x)
    with pytest.raises(ShapeError, match=r"\(12,\)"):
        reverse_questions(x.ravel())


@pytest.mark.parametrize("load, widths", [(load_addition, (7, 5)), (load_dates, (29, 11))])
def test_generated_data_sets(load, widths):
    (x, t), (x_test, t_test), vocab = load()
    assert x.shape == (45_000, widths[0]) and t.shape == (45_000, widths[1])
    assert x_test.shape == (5_000, widths[0]) and t_test.shape == (5_000, widths[1])
    (x2, _), _, vocab2 = load()
    np.testing.assert_array_equal(x, x2)
    assert vocab == vocab2
    (x3, _), _, _ = load(n=100, seed=3)
    assert x3.shape == (90, widths[0])
    assert not np.array_equal(x3, x[:90])
