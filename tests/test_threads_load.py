"""The thread count fitted to the machine: a container's CPU quota, and the CPUs
that other processes leave free (``timelayers.threads.adapt_to_load``)."""

import os
import subprocess
import sys

import pytest

from timelayers import threads


@pytest.fixture
def adaptive(monkeypatch):
    """The adaptive default, whatever the test run set: no fixed count, no
    sample yet, and the pool's size restored afterwards."""
    monkeypatch.delenv("TIMELAYERS_NUM_THREADS", raising=False)
    monkeypatch.setattr(threads, "_fixed", False)
    monkeypatch.setattr(threads, "_load_sample", None)
    monkeypatch.setattr(threads, "_adapted", False)
    before = threads.get_num_threads()
    yield
    threads._resize_pool(before)


def _write(folder, name, text):
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


@pytest.mark.parametrize("files, quota", [
    ({"cpu.max": "100000 100000\n"}, 1.0),
    ({"cpu.max": "150000 100000\n"}, 1.5),
    ({"cpu.max": "max 100000\n"}, None),
    ({"cpu/cpu.cfs_quota_us": "50000\n", "cpu/cpu.cfs_period_us": "100000\n"}, 0.5),
    ({"cpu/cpu.cfs_quota_us": "-1\n", "cpu/cpu.cfs_period_us": "100000\n"}, None),
    ({}, None),
])
def test_cgroup_quota_is_read_from_v2_and_v1_files(tmp_path, files, quota):
    for name, text in files.items():
        _write(tmp_path, name, text)
    assert threads.cgroup_cpu_quota(str(tmp_path)) == quota


@pytest.mark.parametrize("quota, cpus, expected", [(None, 4, 4), (1.0, 4, 1), (0.5, 4, 1),
                                                   (1.5, 4, 2), (8.0, 2, 2)])
def test_a_cpu_quota_caps_the_default_threads(monkeypatch, quota, cpus, expected):
    monkeypatch.setattr(threads, "cgroup_cpu_quota", lambda root="": quota)
    monkeypatch.setattr(threads, "_allowed_cpus", lambda: list(range(cpus)))
    monkeypatch.delenv("TIMELAYERS_NUM_THREADS", raising=False)
    assert threads.cpu_limit() == expected
    assert threads._default_num_threads() == expected


@pytest.mark.parametrize("limit, others, expected", [
    (2, 0.0, 2), (2, 0.4, 2), (2, 0.6, 1), (2, 1.9, 1), (2, 5.0, 1), (8, 2.2, 6), (1, 0.0, 1)])
def test_threads_for_load_leave_the_busy_cpus(limit, others, expected):
    assert threads.threads_for_load(limit, others) == expected


def _fake_machine(monkeypatch, busy, own):
    """/proc/stat's busy seconds and this process's CPU seconds, as lists read in turn."""
    busy, own = iter(busy), iter(own)
    monkeypatch.setattr(threads, "_busy_seconds", lambda cpus: next(busy))
    monkeypatch.setattr(threads, "_own_cpu_seconds", lambda: next(own))
    monkeypatch.setattr(threads, "cpu_limit", lambda: 2)


def test_adapt_to_load_fits_the_threads_to_the_free_cpus(monkeypatch, adaptive):
    # second 1: 2 CPU-seconds busy, 0.5 of them ours -> others 1.5 -> 1 thread;
    # second 2: 1 busy, 1 ours -> others 0 -> 2 threads again
    _fake_machine(monkeypatch, busy=[10.0, 12.0, 13.0], own=[1.0, 1.5, 2.5])
    assert threads.adapt_to_load(now=100.0) == threads.get_num_threads()  # first sample
    assert threads.adapt_to_load(now=101.0) == 1 == threads.get_num_threads()
    assert threads.adapt_to_load(now=101.5) == 1     # within the interval: not read again
    assert threads.adapt_to_load(now=102.0) == 2 == threads.get_num_threads()


def test_the_first_reading_comes_a_quarter_second_after_the_one_at_import(monkeypatch,
                                                                           adaptive):
    # the first window may be short (a short training should not run its first
    # second on a guess); the later ones are a second long
    _fake_machine(monkeypatch, busy=[10.0, 10.5, 11.5], own=[1.0, 1.0, 1.5])
    assert threads.adapt_to_load(now=100.0) == threads.get_num_threads()  # at import
    assert threads.adapt_to_load(now=100.1) == threads.get_num_threads()  # too soon
    assert threads.adapt_to_load(now=100.25) == 1      # others 2.0 CPUs -> 1 thread
    assert threads.adapt_to_load(now=100.75) == 1      # within a second: not read again
    assert threads.adapt_to_load(now=101.25) == 2      # others 0.5 -> 2 threads


def test_a_fixed_count_is_left_alone(monkeypatch, adaptive):
    _fake_machine(monkeypatch, busy=[10.0, 12.0], own=[1.0, 1.0])
    monkeypatch.setattr(threads, "_fixed", True)
    n = threads.get_num_threads()
    threads.adapt_to_load(now=100.0)
    assert threads.adapt_to_load(now=101.0) == n == threads.get_num_threads()
    monkeypatch.setattr(threads, "_fixed", False)
    monkeypatch.setenv("TIMELAYERS_NUM_THREADS", str(n))
    assert threads.adapt_to_load(now=102.0) == n


def test_set_num_threads_fixes_the_count(monkeypatch, adaptive):
    threads.set_num_threads(1)
    assert threads._fixed


def test_busy_seconds_read_the_allowed_cpus_of_proc_stat():
    if not os.path.exists("/proc/stat"):
        pytest.skip("no /proc/stat here")
    cpus = sorted(os.sched_getaffinity(0))
    first = threads._busy_seconds(cpus)
    sum(i * i for i in range(300000))   # some CPU time of our own
    second = threads._busy_seconds(cpus)
    assert 0 < first <= second


def test_a_one_cpu_process_runs_one_thread():
    """A process allowed one CPU (as a container limited to 1 CPU is, through its
    affinity or its quota) runs one thread by default."""
    if not hasattr(os, "sched_setaffinity"):
        pytest.skip("no CPU affinity on this platform")
    code = ("import os; os.sched_setaffinity(0, {min(os.sched_getaffinity(0))}); "
            "import timelayers as tl; print(tl.threads.get_num_threads())")
    env = {k: v for k, v in os.environ.items() if k != "TIMELAYERS_NUM_THREADS"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                         check=True).stdout
    assert out.strip() == "1"


def test_train_step_adapts_the_threads(monkeypatch):
    import numpy as np
    import timelayers as tl

    calls = []
    monkeypatch.setattr(tl.training.trainer, "adapt_to_load", lambda: calls.append(1))
    model = tl.models.Rnnlm(vocab_size=7, wordvec_size=3, hidden_size=4, rng=0)
    trainer = tl.RnnlmTrainer(model, tl.SGD(lr=0.1), progress=False)
    xs = np.zeros((2, 3), dtype=np.int32)
    trainer.train_step(xs, xs)
    trainer.train_step(xs, xs)
    assert len(calls) == 2


def test_the_first_reading_is_taken_at_import():
    """So that a training's first step already compares with it."""
    if not os.path.exists("/proc/stat"):
        pytest.skip("no /proc/stat here")
    code = "import timelayers.threads as t; print(t._load_sample is not None)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert out.strip() == "True"


def test_decoding_adapts_the_threads(monkeypatch):
    """Generation and answering follow the machine too, once a step at most a second."""
    import numpy as np
    import timelayers as tl

    calls = []
    monkeypatch.setattr(tl.decoding, "adapt_to_load", lambda: calls.append(1))
    model = tl.models.Rnnlm(vocab_size=7, wordvec_size=3, hidden_size=4, rng=0)
    tl.decoding.generate_ids(model, 0, length=3, rng=0)
    s2s = tl.models.Seq2seq(vocab_size=7, wordvec_size=3, hidden_size=4, rng=0)
    tl.decoding.greedy_decode(s2s, np.zeros((2, 3), dtype=np.int32), 0, length=2)
    assert len(calls) == 3 + 1 + 2  # every token; before the batch is cut into blocks, every step
