"""The shared output checks: one line for a bad output folder, one temporary suffix, and a rerun that
sweeps what a killed run left behind."""

import pytest

from engine.atomic import OutputError, atomic_files, atomic_path, check_output_dir, sweep_temporaries


def test_an_output_folder_that_is_a_file_is_one_line(tmp_path):
    (tmp_path / "out").write_text("x")
    with pytest.raises(OutputError, match="out: is an existing file, not a folder"):
        check_output_dir(tmp_path / "out")
    with pytest.raises(OutputError, match="out is a file"):
        check_output_dir(tmp_path / "out" / "deeper")
    assert check_output_dir(tmp_path / "new" / "deep") == tmp_path / "new" / "deep"
    assert not (tmp_path / "new").exists()  # checked, not made: a later refusal leaves no empty folder
    assert check_output_dir(tmp_path) == tmp_path and list(tmp_path.iterdir()) == [tmp_path / "out"]  # no probe left


def test_a_full_disk_is_refused_up_front(tmp_path):
    with pytest.raises(OutputError, match="no space left"):
        check_output_dir(tmp_path, min_free_mb=float("inf"))


def test_writes_inside_an_atomic_item_carry_one_temporary_suffix(tmp_path):
    final = tmp_path / "clip.wav"
    with atomic_files(final) as (tmp,):
        with atomic_path(tmp) as inner:
            assert inner == tmp and inner.name.count(".tmp-") == 1
            inner.write_text("audio")
    assert final.read_text() == "audio" and sorted(p.name for p in tmp_path.iterdir()) == ["clip.wav"]


def test_a_rewrite_sweeps_the_stale_temporaries_of_its_own_file_only(tmp_path):
    (tmp_path / "clip.tmp-1a2b3c4d.wav").write_text("killed")
    (tmp_path / "other.tmp-1a2b3c4d.wav").write_text("someone else's")
    with atomic_path(tmp_path / "clip.wav") as tmp:
        tmp.write_text("done")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clip.wav", "other.tmp-1a2b3c4d.wav"]


def test_sweep_removes_temporaries_and_old_folders_anywhere_below(tmp_path):
    (tmp_path / "a" / "step_10.tmp-0badcafe").mkdir(parents=True)
    (tmp_path / "a" / "step_10.tmp-0badcafe" / "weights.pt").write_text("half")
    (tmp_path / "a" / "run.old-12345678").mkdir()
    (tmp_path / "a" / "clip.tmp-deadbeef.mp4").write_text("half")
    (tmp_path / "a" / "clip.mp4").write_text("whole")
    swept = sweep_temporaries(tmp_path)
    assert len(swept) == 3
    assert [p.name for p in (tmp_path / "a").iterdir()] == ["clip.mp4"]


def test_an_item_with_no_outputs_writes_nothing():
    with atomic_files() as temps:
        assert temps == []
