"""Running the command line in-process, and the small text it trains on."""

from timelayers.cli import main

TEXT = "\n".join(["the cat sat on the mat", "the dog sat on the log",
                  "a cat and a dog", "the mat and the log"] * 30) + "\n"
"""A tiny corpus: 13 words, 120 lines."""


TINY_LM = ["--epochs", 1, "--hidden", 4, "--wordvec", 4, "--batch-size", 2, "--time-size", 5,
           "--no-eval"]
"""``timelayers train rnnlm`` flags for a run of a second on :data:`TEXT`."""


def run(capsys, *argv):
    """``timelayers ARGV...`` in this process: its exit status, stdout and stderr."""
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err
