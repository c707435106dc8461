"""Data-parallel training over MPI (timelayers.distributed).

The tests that need MPI launch ``mpiexec -n 2`` themselves (tests/mpi/train_replicas.py,
or the command line) and are skipped when mpi4py or mpiexec is missing."""

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from timelayers.distributed import DistributedError, mpi_world, shard_bounds
from support.devices import needs_cupy

SCRIPT = Path(__file__).parent / "mpi" / "train_replicas.py"
TIMEOUT = 120


def _mpiexec():
    beside_python = Path(sys.executable).parent / "mpiexec"
    return str(beside_python) if beside_python.exists() else shutil.which("mpiexec")


def _mpi_missing():
    try:
        import mpi4py  # noqa: F401
    except ImportError:
        return "mpi4py is not installed (pip install 'timelayers[mpi]')"
    if _mpiexec() is None:
        return "no mpiexec beside the Python executable or on the PATH"
    return None


needs_mpi = pytest.mark.skipif(_mpi_missing() is not None, reason=str(_mpi_missing()))

# a process of the test run may itself have been started by an MPI launcher
_CLEAN_ENV = {k: v for k, v in os.environ.items()
              if not k.startswith(("PMI_", "OMPI_", "MV2_", "PMIX_", "HYDRA_", "MPI_"))}
_ONE_THREAD = dict(_CLEAN_ENV, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1",
                   MKL_NUM_THREADS="1")


def launch(args, ranks, cwd=None, env=None):
    """Run ``args`` (a list after the interpreter) in ``ranks`` processes (1: no
    mpiexec), with ``env`` added to the environment; returns (CompletedProcess,
    seconds)."""
    command = [sys.executable, *map(str, args)]
    if ranks > 1:
        command = [_mpiexec(), "-n", str(ranks), *command]
    start = time.perf_counter()
    result = subprocess.run(command, capture_output=True, text=True, timeout=TIMEOUT,
                            env={**_ONE_THREAD, **(env or {})}, cwd=cwd)
    return result, time.perf_counter() - start


# -- without MPI ------------------------------------------------------------------------------
def test_shard_bounds_split_the_rows_evenly_first_ranks_take_the_remainder():
    assert [shard_bounds(10, 4, r) for r in range(4)] == [(0, 3), (3, 6), (6, 8), (8, 10)]
    assert [shard_bounds(6, 2, r) for r in range(2)] == [(0, 3), (3, 6)]
    with pytest.raises(DistributedError, match="batch of 1 rows cannot be split across 2"):
        shard_bounds(1, 2, 0)


def test_one_process_runs_without_mpi(monkeypatch):
    for name in ("PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "MV2_COMM_WORLD_SIZE"):
        monkeypatch.delenv(name, raising=False)
    assert mpi_world() is None
    monkeypatch.setenv("PMI_SIZE", "1")
    assert mpi_world() is None


def test_several_processes_without_mpi4py_is_a_clear_error(monkeypatch):
    monkeypatch.setenv("PMI_SIZE", "2")
    monkeypatch.setitem(sys.modules, "mpi4py", None)  # import fails
    with pytest.raises(DistributedError, match=r"one of 2 started by mpiexec, but mpi4py is "
                                               r"not installed: pip install 'timelayers\[mpi\]'"):
        mpi_world()


# -- two ranks against one process -------------------------------------------------------------
def _params(path):
    with np.load(path) as f:
        return {k: f[k] for k in f.files}


@needs_mpi
@pytest.mark.parametrize("model", ["rnnlm", "better-rnnlm", "seq2seq", "cbow"])
def test_two_ranks_with_half_the_rows_train_as_one_process(tmp_path, model):
    """2 epochs (40 steps for the LMs, with clipping and a validation pass between
    epochs; 16 for seq2seq, whose batch of 5 splits as 3 + 2; 98 for CBOW, whose
    negatives are made a function of the target: random ones would be drawn from
    other streams by the ranks than by one process). Same parameters and losses
    to float32 rounding."""
    alone, _ = launch([SCRIPT, model, tmp_path / "one.npz"], 1)
    assert alone.returncode == 0, alone.stderr
    two, _ = launch([SCRIPT, model, tmp_path / "two.npz"], 2)
    assert two.returncode == 0, two.stderr
    one, dp = _params(tmp_path / "one.npz"), _params(tmp_path / "two.npz")
    assert set(one) == set(dp)
    for name in one:
        if name == "next_draws":
            continue
        scale = max(float(np.abs(one[name]).max()), 1e-3)
        np.testing.assert_allclose(dp[name], one[name], rtol=0, atol=2e-5 * scale, err_msg=name)


@needs_cupy
@needs_mpi
@pytest.mark.parametrize("gpus", [1, 2])
@pytest.mark.parametrize("model", ["rnnlm", "seq2seq"])
def test_two_ranks_on_the_gpu_train_as_one_process(tmp_path, model, gpus):
    """The same runs with the model and data on CuPy arrays: the gradients are
    reduced through the host (staged: the processes share a GPU) or on the
    devices (NCCL: a GPU each, which the CuPy stand-in is told it has), and the
    result is one process's to float32 rounding."""
    alone, _ = launch([SCRIPT, model, tmp_path / "one.npz", "--gpu"], 1)
    assert alone.returncode == 0, alone.stderr
    two, _ = launch([SCRIPT, model, tmp_path / "two.npz", "--gpu"], 2,
                    env={"CUPY_STANDIN_DEVICES": str(gpus)})
    assert two.returncode == 0, two.stderr
    if os.environ.get("TIMELAYERS_TEST_CUPY") == "standin":
        expected = "NcclCollectives" if gpus == 2 else "StagedCollectives"
        assert f"collectives: {expected}" in two.stdout
    one, dp = _params(tmp_path / "one.npz"), _params(tmp_path / "two.npz")
    for name in one:
        if name == "next_draws":
            continue
        scale = max(float(np.abs(one[name]).max()), 1e-3)
        np.testing.assert_allclose(dp[name], one[name], rtol=0, atol=2e-5 * scale, err_msg=name)


@needs_mpi
def test_dropout_draws_differ_across_ranks_and_repeat_with_the_seed(tmp_path):
    runs = []
    for k in range(2):
        result, _ = launch([SCRIPT, "better-rnnlm", tmp_path / f"run{k}.npz", "--dropout", "0.5"],
                           2)
        assert result.returncode == 0, result.stderr
        runs.append(_params(tmp_path / f"run{k}.npz"))
    draws = runs[0]["next_draws"]
    assert draws[0] != draws[1]  # the ranks' generators are in different streams
    for name in runs[0]:
        np.testing.assert_array_equal(runs[1][name], runs[0][name], err_msg=name)


@needs_mpi
def test_a_failing_rank_stops_the_others_with_its_error(tmp_path):
    result, seconds = launch([SCRIPT, "rnnlm", tmp_path / "x.npz", "--fail-at", "3"], 2)
    assert result.returncode != 0
    assert "rank 1 fails on purpose at iteration 3" in result.stderr
    assert seconds < 30
    assert not (tmp_path / "x.npz").exists()


# -- the command line -------------------------------------------------------------------------
TEXT = "\n".join(["the cat sat on the mat", "the dog sat on the log",
                  "a cat and a dog", "the mat and the log"] * 30) + "\n"
# lr 1, not the recipe's 20: at 20 the float32 rounding that differs between one
# batch and two half batches grows to visible differences within two epochs
TRAIN = ["-m", "timelayers", "train", "rnnlm", "--data", "tiny.txt", "--hidden", 8, "--wordvec",
         8, "--batch-size", 4, "--time-size", 5, "--lr", 1]


@pytest.fixture
def workdir(tmp_path):
    (tmp_path / "tiny.txt").write_text(TEXT)
    return tmp_path


def _tensors(path):
    from safetensors.numpy import load_file

    return load_file(str(path))


@needs_mpi
def test_mpiexec_train_is_data_parallel_and_only_rank_0_writes(workdir):
    _train_one_and_two(workdir, [])


@needs_cupy
@needs_mpi
def test_mpiexec_train_on_gpus_is_data_parallel_and_only_rank_0_writes(workdir):
    _train_one_and_two(workdir, ["--device", "gpu"], env={"CUPY_STANDIN_DEVICES": "2"})


def _train_one_and_two(workdir, device, env=None):
    """One process and two train the same run (with the ``device`` arguments);
    the two give one process's weights and losses, and rank 0 alone writes."""
    alone, _ = launch([*TRAIN, *device, "--epochs", 2, "--out", "one"], 1, cwd=workdir)
    assert alone.returncode == 0, alone.stderr
    two, _ = launch([*TRAIN, *device, "--epochs", 2, "--out", "two"], 2, cwd=workdir, env=env)
    assert two.returncode == 0, two.stderr
    assert two.stdout.count("run folder: two") == 1  # printed by rank 0 only
    assert two.stderr.count("epoch 2/2") == 1  # progress shown by rank 0 only
    assert json.loads((workdir / "two" / "run.json").read_text())["processes"] == 2
    assert "processes" not in json.loads((workdir / "one" / "run.json").read_text())
    one, dp = _tensors(workdir / "one" / "model.safetensors"), _tensors(
        workdir / "two" / "model.safetensors")
    for name in one:
        np.testing.assert_allclose(dp[name], one[name], rtol=0, atol=1e-5, err_msg=name)
    one_loss = json.loads((workdir / "one" / "history.json").read_text())["loss"]
    two_loss = json.loads((workdir / "two" / "history.json").read_text())["loss"]
    np.testing.assert_allclose(two_loss, one_loss, rtol=1e-6)


@needs_mpi
def test_resume_needs_the_same_number_of_processes_and_continues_exactly(workdir):
    for out, epochs in [("whole", 3), ("parts", 2)]:
        result, _ = launch([*TRAIN, "--epochs", epochs, "--out", out], 2, cwd=workdir)
        assert result.returncode == 0, result.stderr
    alone, _ = launch(["-m", "timelayers", "train", "rnnlm", "--resume", "--epochs", 3,
                       "--out", "parts"], 1, cwd=workdir)
    assert alone.returncode == 2
    assert ("run 'parts' was trained by 2 process(es) and this is 1: resume it with as many "
            "(mpiexec -n 2)") in alone.stderr
    resumed, _ = launch(["-m", "timelayers", "train", "rnnlm", "--resume", "--epochs", 3,
                         "--out", "parts"], 2, cwd=workdir)
    assert resumed.returncode == 0, resumed.stderr
    whole, parts = (_tensors(workdir / d / "model.safetensors") for d in ("whole", "parts"))
    for name in whole:
        np.testing.assert_array_equal(parts[name], whole[name], err_msg=name)


@needs_mpi
def test_an_error_on_rank_0_stops_the_waiting_rank_within_seconds(workdir):
    first, _ = launch([*TRAIN, "--epochs", 1, "--out", "run"], 1, cwd=workdir)
    assert first.returncode == 0, first.stderr
    # only rank 0 looks at the folder: rank 1 waits for its weights until stopped
    again, seconds = launch([*TRAIN, "--epochs", 1, "--out", "run"], 2, cwd=workdir)
    assert again.returncode != 0
    assert "(process 0 of 2): error: run folder 'run' already holds a run" in again.stderr
    assert seconds < 30


@needs_mpi
def test_processes_on_one_machine_sum_in_shared_memory():
    """Three processes (an uneven split of every buffer): the host collectives sum
    the buffers they allocate in shared memory, as Allreduce does, with the same
    bits on every rank; other buffers still go through Allreduce."""
    result, _ = launch([SCRIPT.parent / "sum_buffers.py"], 3)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report == {"collectives": "SharedMemoryCollectives", "equal": True,
                      "same_bits_everywhere": True, "plain": [3.0] * 5}


@needs_mpi
@pytest.mark.parametrize("differ,message", [
    (["--lr", 1, "--lr", 2], "different option lr: 1.0 on rank 0; 2.0 on rank 1"),
    (["--hidden", 8, "--hidden", 16], "different option hidden_size: 8 on rank 0; 16 on rank 1"),
    (["--data", "tiny.txt", "--data", "other.txt"], "different data file SHA-256: '"),
])
def test_ranks_started_with_different_options_or_data_stop_with_one_line(workdir, differ,
                                                                         message):
    (workdir / "other.txt").write_text(TEXT.replace("cat", "cow"))
    common = ["-m", "timelayers", "train", "rnnlm", "--wordvec", 8, "--batch-size", 4,
              "--time-size", 5, "--epochs", 1, "--out", "run"]
    defaults = {"--lr": ["--lr", 1], "--hidden": ["--hidden", 8], "--data": ["--data", "tiny.txt"]}
    rest = [a for flag, pair in defaults.items() if flag != differ[0] for a in pair]
    command = [_mpiexec(), "-n", 1, sys.executable, *common, *rest, *differ[:2], ":",
               "-n", 1, sys.executable, *common, *rest, *differ[2:]]
    start = time.perf_counter()
    result = subprocess.run(list(map(str, command)), capture_output=True, text=True,
                            timeout=TIMEOUT, env=_ONE_THREAD, cwd=workdir)
    assert result.returncode != 0
    lines = [line for line in result.stderr.splitlines() if "timelayers train" in line]
    assert len(lines) == 1, result.stderr
    assert "(process 0 of 2): error: the 2 processes were started with " + message in lines[0]
    assert time.perf_counter() - start < 30
    assert not (workdir / "run").exists()
