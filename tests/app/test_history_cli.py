"""``stressbed history``: run directories imported (again: nothing changes), listed, filtered,
as JSON; what it refuses."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from stressbed.cli import main

from ..history.test_store import SUMMARY


def run_dir(results: Path, run_id: str, **more: object) -> Path:
    folder = results / run_id
    folder.mkdir(parents=True)
    (folder / "summary.json").write_text(json.dumps({**SUMMARY, "run_id": run_id, **more}))
    return folder


def test_run_directories_are_imported_once_and_listed_oldest_first(tmp_path, capsys):
    results = tmp_path / "results"
    run_dir(results, "20261207-120000-aaaaaa", verdict="pass")
    run_dir(results, "20261206-120000-bbbbbb")
    (results / "latest").symlink_to(results / "20261207-120000-aaaaaa")
    store = str(tmp_path / "h.db")
    for _ in range(2):
        assert main(["history", "import", str(results), "--history", store, "--build", "b7"]) == 0
        assert "imported 2 run(s)" in capsys.readouterr().out
    assert main(["history", "--history", store]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in lines[1:]] == [
        "20261206-120000-bbbbbb",
        "20261207-120000-aaaaaa",
    ]
    assert "2026-12-06 12:00:00" in lines[1]
    assert lines[1].split()[-4:] == ["b7", "40.5", "0.40%", "50.0"]
    assert main(["history", "--history", store, "--verdict", "pass", "--json"]) == 0
    (only,) = json.loads(capsys.readouterr().out)
    assert only["run_id"] == "20261207-120000-aaaaaa"
    assert only["figures"]["http_req_duration p(95)"] == 40.5
    assert only["thresholds"][0]["outcome"] == "failed"


def test_what_history_refuses_is_one_line_and_exit_2(tmp_path, capsys):
    assert main(["history", "--history", str(tmp_path / "none.db")]) == 2
    assert "expected an existing history store" in capsys.readouterr().err
    assert main(["history", "import", str(tmp_path / "nowhere")]) == 2
    assert "expected a run directory or a folder" in capsys.readouterr().err
    assert main(["history", "import"]) == 2
    assert "one run directory or results folder at least" in capsys.readouterr().err


def test_a_store_is_a_file_or_a_postgresql_url_listed_alike(store_location, tmp_path, capsys):
    results = tmp_path / "results"
    run_dir(results, "20261207-120000-aaaaaa", verdict="pass")
    run_dir(results, "20261206-120000-bbbbbb")
    imported = ["history", "import", str(results), "--history", store_location, "--build", "b7"]
    assert main(imported) == 0
    assert f"imported 2 run(s) into {store_location}" in capsys.readouterr().out
    assert main(["history", "--history", store_location, "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert [(e["run_id"], e["build"]) for e in listed] == [
        ("20261206-120000-bbbbbb", "b7"),
        ("20261207-120000-aaaaaa", "b7"),
    ]


def test_a_password_in_a_history_url_is_refused_unseen(capsys):
    url = "postgresql://ci:hunter2-x@127.0.0.1:9/history"
    assert main(["history", "--history", url]) == 2
    err = capsys.readouterr().err
    assert "history store postgresql://ci:***@127.0.0.1:9/history: a password in the URL" in err
    assert "hunter2" not in err


def test_runs_are_filtered_by_build_and_time(store_location, tmp_path, capsys):
    results = tmp_path / "results"
    run_dir(results, "20261205-120000-aaaaaa")
    run_dir(results, "20261206-120000-bbbbbb")
    run_dir(results, "20261207-120000-cccccc")
    main(["history", "import", str(results / "20261205-120000-aaaaaa"), "--history",
          store_location, "--build", "b1"])  # fmt: skip
    main(["history", "import", str(results), "--history", store_location, "--build", "b2"])
    capsys.readouterr()

    def listed(*options: str) -> list[str]:
        assert main(["history", "--history", store_location, "--json", *options]) == 0
        return [e["run_id"] for e in json.loads(capsys.readouterr().out)]

    assert listed("--build", "b2") == ["20261205-120000-aaaaaa", "20261206-120000-bbbbbb",
                                       "20261207-120000-cccccc"]  # fmt: skip
    assert listed("--since", "2026-12-06") == ["20261206-120000-bbbbbb", "20261207-120000-cccccc"]
    assert listed("--since", "2026-12-06", "--until", "2026-12-07T12:00") == [
        "20261206-120000-bbbbbb"
    ]
    with pytest.raises(SystemExit) as refused:
        main(["history", "--history", store_location, "--since", "yesterday"])
    assert refused.value.code == 2
    assert "--since: got 'yesterday'; expected an ISO date" in capsys.readouterr().err
