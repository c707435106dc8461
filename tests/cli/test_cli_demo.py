"""`timelayers demo`: the TimeAffine check (the main job: tests/cli/test_cli.py)."""

import subprocess
import sys

from timelayers.cli import main


def test_demo_check_via_entry_function(capsys):
    assert main(["demo", "--check-only"]) == 0
    out = capsys.readouterr().out
    assert "out= [[[ 4.18239806e-01" in out
    assert "out: the layer's output" in out and "dx: backward of dout" in out
    assert "grads kept their identity through backward: True" in out
    assert "TimeAffine check: OK" in out


def test_demo_keeps_the_flags_earlier_name(capsys):
    assert main(["demo", "--seed-check-only"]) == 0
    assert "TimeAffine check: OK" in capsys.readouterr().out


def test_cli_help_and_bad_command():
    res = subprocess.run([sys.executable, "-m", "timelayers", "--help"], capture_output=True, text=True)
    assert res.returncode == 0 and "demo" in res.stdout
    res = subprocess.run([sys.executable, "-m", "timelayers", "nonsense"], capture_output=True, text=True)
    assert res.returncode != 0 and "Traceback" not in res.stderr
