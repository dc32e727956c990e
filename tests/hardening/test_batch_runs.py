"""Many-item runs of infer.py (``--manifest``/``--out-dir``): a rerun resumes (a killed run's temporaries
are swept, finished items skipped, ``--overwrite`` redoes them), a clip that only the front-end can fail
(no face) is recorded in ``failures.jsonl`` while the others are written, and every written file is printed."""

import json
import shutil

import numpy as np
import pytest

import infer
from tests.hardening.test_bad_inputs import TINY_CODECS


def run(argv: list[str], capsys) -> tuple[int, list[str], list[str]]:
    """infer.py in this process -> (exit status, stdout lines, stderr lines)."""
    code = infer.main(argv)
    captured = capsys.readouterr()
    return code, captured.out.split(), captured.err.strip().splitlines()


def write_manifest(path, rows: list[dict]):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_a_rerun_sweeps_temporaries_and_skips_finished_clips(runs, tmp_path, capsys):
    np.save(tmp_path / "lip.npy", np.zeros((10, 32), np.float32))
    np.save(tmp_path / "face.npy", np.zeros(16, np.float32))
    np.save(tmp_path / "emo.npy", np.zeros(10, np.int64))
    manifest = write_manifest(tmp_path / "m.jsonl", [{"id": i, "lip": "lip.npy", "face": "face.npy",
                                                      "emotion": "emo.npy"} for i in "abc"])
    out = tmp_path / "out"
    argv = ["hicodit", "--checkpoint", str(runs["hicodit"]), "--manifest", str(manifest), "--out-dir", str(out),
            "--steps", "2", "--tokens-only"]
    code, printed, _ = run(argv, capsys)
    assert code == 0 and printed == [str(out / f"{i}.tokens.npy") for i in "abc"]

    # what a kill leaves: temporaries of atomic writes, a folder moved aside, an item not finished
    stale = [out / "a.tmp-0123abcd.wav", out / "c.tokens.tmp-89abcdef.npy", out / "sub" / "x.tmp-00000000.mp4"]
    for path in stale:
        path.parent.mkdir(exist_ok=True)
        path.write_bytes(b"half")
    (out / "old.old-0123abcd").mkdir()
    (out / "c.tokens.npy").unlink()
    finished = {i: (out / f"{i}.tokens.npy").stat().st_mtime_ns for i in "ab"}
    code, printed, log = run(argv, capsys)
    assert code == 0 and printed == [str(out / "c.tokens.npy")], printed
    assert any("skipping 2 of 3 clip(s) whose outputs exist (--overwrite redoes them)" in line for line in log), log
    assert not any(p.exists() for p in stale) and not (out / "old.old-0123abcd").exists()
    assert {i: (out / f"{i}.tokens.npy").stat().st_mtime_ns for i in "ab"} == finished

    code, printed, _ = run([*argv, "--overwrite", "--quiet"], capsys)
    assert code == 0 and printed == [str(out / f"{i}.tokens.npy") for i in "abc"]


def test_a_talker_rerun_redoes_only_requests_with_missing_files(runs, media, tmp_path, capsys):
    manifest = write_manifest(tmp_path / "m.jsonl", [{"id": i, "ref_audio": str(media / "voice.wav")} for i in "ab"])
    out = tmp_path / "out"
    argv = ["talker", "--checkpoint", str(runs["talker"]), *TINY_CODECS, "--mode", "tts", "--manifest", str(manifest),
            "--out-dir", str(out), "--max-seconds", "0.3", "--quiet"]
    code, printed, _ = run(argv, capsys)
    assert code == 0 and sorted(printed) == sorted(str(out / f"{i}.{ext}") for i in "ab" for ext in ("npz", "wav"))
    (out / "b.wav").unlink()  # b's files were renamed together: one missing means b is redone
    code, printed, _ = run(argv, capsys)
    assert code == 0 and printed == [str(out / "b.npz"), str(out / "b.wav")]


def test_a_clip_without_a_face_is_recorded_and_the_others_are_written(runs, tmp_path, capsys):
    pytest.importorskip("dlib")
    pytest.importorskip("skimage")
    from engine.media import write_video
    from tests.visual.face_clips import astronaut_frames, astronaut_motion

    write_video(tmp_path / "face.mp4", astronaut_frames(astronaut_motion(12, 160), 160), 25)
    write_video(tmp_path / "noise.mp4", (np.random.default_rng(0).random((12, 96, 96, 3)) * 255).astype(np.uint8), 25)
    manifest = write_manifest(tmp_path / "m.jsonl", [{"id": "speaker", "video": "face.mp4"},
                                                     {"id": "nobody", "video": "noise.mp4"}])  # last in the list
    out = tmp_path / "out"
    argv = ["hicodit", "--checkpoint", str(runs["hicodit"]), "--random-extractors", "--manifest", str(manifest),
            "--out-dir", str(out), "--steps", "2", "--batch-size", "1", "--save-crops", "--save-features", "--quiet"]
    code, printed, log = run(argv, capsys)
    errors = [line for line in log if " ERROR " in line]
    assert code == 1 and len(errors) == 1 and "Traceback" not in "\n".join(log), log
    assert errors[0].endswith(f"1 of 2 clip(s) failed (the others were written); the list, with each reason, is in "
                              f"{out / 'failures.jsonl'}")
    written = {f"speaker.{ext}" for ext in ("wav", "mp4", "mouth.mp4", "lip.npy", "face.npy", "emotion.npy")}
    assert sorted(printed) == sorted(str(out / name) for name in written)  # every written file is printed
    assert {p.name for p in out.iterdir()} == written | {"failures.jsonl"}
    failures = [json.loads(line) for line in (out / "failures.jsonl").read_text().splitlines()]
    assert [f["id"] for f in failures] == ["nobody"]
    assert failures[0]["reason"].endswith("noise.mp4: no face found in any of the 12 frames")

    # the rerun skips the finished clip and tries the failed one again; fixed, the list goes
    code, printed, _ = run(argv, capsys)
    assert code == 1 and printed == []
    shutil.copyfile(tmp_path / "face.mp4", tmp_path / "noise.mp4")
    code, printed, _ = run(argv, capsys)
    assert code == 0 and str(out / "nobody.wav") in printed and not (out / "failures.jsonl").exists(), (printed, _)
