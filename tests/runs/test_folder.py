"""The files of a run (timelayers.runs.folder): what counts as a run, starting a
new one without mixing runs, and run.json's fields. The writer's lock, links and
run ids are tested with the promises they keep (tests/test_promises.py)."""

import json

import pytest

from timelayers import DataError
from timelayers.runs.folder import (RUN_FILES, read_run_json, run_files_in, saved_nothing,
                                    start_new_run)

RUN = {"recipe": "rnnlm", "options": {"epochs": 1}, "seed": 0, "data": None}


def _write(folder, name, text="x"):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_text(text)


def test_a_folder_is_a_run_by_any_of_its_files(tmp_path):
    assert run_files_in(tmp_path) == []
    _write(tmp_path, "notes.txt")
    assert run_files_in(tmp_path) == []
    _write(tmp_path, "history.json")
    (tmp_path / "metrics.json").symlink_to(tmp_path / "nowhere")      # dangling: counts too
    assert run_files_in(tmp_path) == ["history.json", "metrics.json"]
    assert RUN_FILES[0] == "run.json"


def test_a_new_run_refuses_an_old_one_unless_forced_and_keeps_other_files(tmp_path):
    start_new_run(tmp_path / "fresh")                                 # created
    assert (tmp_path / "fresh").is_dir()
    _write(tmp_path, "run.json", json.dumps(RUN))
    _write(tmp_path, "model.safetensors")
    _write(tmp_path, "notes.txt")
    with pytest.raises(FileExistsError, match="already holds a run .*--resume.*--force"):
        start_new_run(tmp_path)
    start_new_run(tmp_path, force=True)
    assert run_files_in(tmp_path) == [] and (tmp_path / "notes.txt").exists()


def test_a_run_that_saved_nothing_is_replaced_without_force(tmp_path):
    _write(tmp_path, "run.json", json.dumps(RUN))
    assert saved_nothing(tmp_path)
    start_new_run(tmp_path)
    assert run_files_in(tmp_path) == []


def test_a_folder_under_a_run_file_s_name_is_not_removed(tmp_path):
    _write(tmp_path, "run.json", json.dumps(RUN))
    (tmp_path / "history.json").mkdir()
    with pytest.raises(FileExistsError, match="holds a folder named 'history.json'"):
        start_new_run(tmp_path, force=True)
    assert (tmp_path / "history.json").is_dir()


@pytest.mark.parametrize("change, message", [
    (lambda r: r.pop("recipe"), "field 'recipe' is missing"),
    (lambda r: r.update(seed=-1), "field 'seed' expected a non-negative int, got -1"),
    (lambda r: r.update(options=[]), "field 'options' expected a dict"),
    (lambda r: r.update(processes=0), "field 'processes' expected a positive int"),
])
def test_run_json_fields_are_checked(tmp_path, change, message):
    info = dict(RUN)
    change(info)
    _write(tmp_path, "run.json", json.dumps(info))
    with pytest.raises(DataError, match=f"run.json' is not a valid run.json: {message}"):
        read_run_json(tmp_path)


def test_a_folder_without_run_json_is_not_a_run(tmp_path):
    with pytest.raises(FileNotFoundError, match="is not a run folder"):
        read_run_json(tmp_path)
    _write(tmp_path, "run.json", "[1, 2")
    with pytest.raises(DataError, match="is corrupt"):
        read_run_json(tmp_path)
