"""Bad inputs through the real entry points: each stops with exit status non-zero, no traceback, one
line naming the file or flag, and nothing left in the output folder. (The training entry point,
where Hydra could wrap an error in a traceback, runs as a subprocess; see test_bad_training.py.)"""

import json
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

import infer


def run(argv: list[str], capsys) -> tuple[int, list[str]]:
    """infer.py in this process -> (exit status, the lines it printed on stderr)."""
    try:
        code = infer.main(argv)
    except SystemExit as e:  # argparse refuses a flag before the command runs
        code = e.code
    return code, capsys.readouterr().err.strip().splitlines()


def refused(argv: list[str], capsys, needle: str, out: Path | None = None) -> str:
    code, lines = run(argv, capsys)
    text = "\n".join(lines)
    assert code not in (0, None), text
    assert "Traceback" not in text, text
    errors = [line for line in lines if " ERROR " in line or ": error: " in line]
    assert len(errors) == 1, text
    assert needle in errors[0], errors[0]
    if out is not None:
        leftovers = [p for p in out.parent.glob(out.name + "*")] if not out.is_dir() else list(out.iterdir())
        assert not leftovers, leftovers
    return errors[0]


# --------------------------------------------------------------------------------------- HiCoDiT
@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    """Features of one clip for the tiny HiCoDiT (lip 32-d, face 16-d, 7 emotions), and variants."""
    root = tmp_path_factory.mktemp("features")
    np.save(root / "lip.npy", np.zeros((10, 32), np.float32))
    np.save(root / "face.npy", np.zeros(16, np.float32))
    np.save(root / "emo.npy", np.zeros(10, np.int64))
    np.save(root / "emo_2d_int.npy", np.zeros((10, 2), np.int64))
    np.save(root / "emo_out_of_range.npy", np.full(10, 9, np.int64))
    np.save(root / "emo_short.npy", np.zeros(3, np.int64))
    np.save(root / "lip_long.npy", np.zeros((300, 32), np.float32))
    np.save(root / "strings.npy", np.array(["a", "b"]))
    (root / "zero.npy").write_bytes(b"")
    return root


def hicodit(runs, clip, out, *extra, lip="lip.npy", emo="emo.npy"):
    return ["hicodit", "--checkpoint", str(runs["hicodit"]), "--lip", str(clip / lip), "--face",
            str(clip / "face.npy"), "--emotion", str(clip / emo), "--out", str(out), "--steps", "2", "--quiet", *extra]


@pytest.mark.parametrize("video,needle", [
    ("garbage.mp4", "garbage.mp4: unreadable or corrupt media file"),
    ("folder.wav", "folder.wav: is a folder, not a file"),
    ("missing.mp4", "missing.mp4: file does not exist"),
    ("empty.wav", "empty.wav: file is empty"),
])
def test_hicodit_bad_video_leaves_no_wav(runs, clip, media, tmp_path, capsys, video, needle):
    out = tmp_path / "speech"
    refused(hicodit(runs, clip, out, "--video", str(media / video)), capsys, needle, out)


@pytest.mark.parametrize("lip,emo,needle", [
    ("lip.npy", "emo_2d_int.npy", "emotion labels must be (T,) integers 0..6 or (T, 7) probabilities"),
    ("lip.npy", "emo_out_of_range.npy", "emotion labels outside 0..6"),
    ("strings.npy", "emo.npy", "strings.npy: not numeric"),
    ("zero.npy", "emo.npy", "zero.npy: not a readable .npy file"),
    ("lip_long.npy", "emo_short.npy", "300 lip frames but 3 emotion frames"),
])
def test_hicodit_bad_features(runs, clip, tmp_path, capsys, lip, emo, needle):
    out = tmp_path / "speech"
    refused(hicodit(runs, clip, out, lip=lip, emo=emo), capsys, needle, out)


@pytest.mark.parametrize("flags,needle", [
    (["--batch-size", "0"], "--batch-size: must be a positive integer"),
    (["--steps", "0"], "--steps: must be a positive integer"),
    (["--steps", "-3"], "--steps: must be a positive integer"),
    (["--device", "tpu9"], "--device: must be auto, cpu, cuda or cuda:N"),
    (["--w-all", "nan"], "--w-all: must be >= 0"),
])
def test_hicodit_bad_flags(runs, clip, tmp_path, capsys, flags, needle):
    out = tmp_path / "speech"
    refused(hicodit(runs, clip, out, *flags), capsys, needle, out)


def test_hicodit_refused_codec_weights_are_one_line(runs, clip, tmp_path, capsys):
    out = tmp_path / "speech"
    refused(hicodit(runs, clip, out, "--codec-weights", str(tmp_path / "nowhere")), capsys, "nowhere", out)


def test_output_names_from_manifest_ids_stay_inside_the_output_folder(runs, clip, tmp_path, capsys):
    manifest = tmp_path / "m.jsonl"
    rows = [{"id": i, "lip": str(clip / "lip.npy"), "face": str(clip / "face.npy"), "emotion": str(clip / "emo.npy")}
            for i in ("../escape", str(tmp_path / "absolute"), "spk1/clip 2")]
    manifest.write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path / "out"
    code, lines = run(["hicodit", "--checkpoint", str(runs["hicodit"]), "--manifest", str(manifest), "--out-dir",
                       str(out), "--steps", "2", "--tokens-only", "--quiet"], capsys)
    assert code == 0, lines
    written = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*.tokens.npy"))
    assert written == sorted(Path("out") / n for n in ("escape.tokens.npy", "spk1_clip_2.tokens.npy",
                                                       f"{output_name(str(tmp_path / 'absolute'))}.tokens.npy"))


def output_name(item_id: str) -> str:
    from engine.cli import output_name as name

    return name(item_id)


def test_ids_that_collide_after_sanitising_are_refused(runs, clip, tmp_path, capsys):
    manifest = tmp_path / "m.jsonl"
    rows = [{"id": i, "lip": str(clip / "lip.npy"), "face": str(clip / "face.npy"), "emotion": str(clip / "emo.npy")}
            for i in ("a/b", "a_b")]
    manifest.write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path / "out"
    refused(["hicodit", "--checkpoint", str(runs["hicodit"]), "--manifest", str(manifest), "--out-dir", str(out),
             "--quiet"], capsys, "manifest ids 'a/b' and 'a_b' would both write")


def test_binary_manifest(runs, tmp_path, capsys):
    manifest = tmp_path / "m.jsonl"
    manifest.write_bytes(bytes(range(256)) * 4)
    refused(["hicodit", "--checkpoint", str(runs["hicodit"]), "--manifest", str(manifest), "--out-dir",
             str(tmp_path / "out"), "--quiet"], capsys, "m.jsonl: not a text file")


@pytest.mark.parametrize("where", ["file_in_the_way", "out_is_a_folder"])
def test_output_folder_problems(runs, clip, tmp_path, capsys, where):
    if where == "file_in_the_way":
        (tmp_path / "blocker").write_text("x")
        out, needle = tmp_path / "blocker" / "speech", "blocker: is an existing file, not a folder"
    else:
        (tmp_path / "speech.wav").mkdir()
        out, needle = tmp_path / "speech", "speech.wav: is an existing folder"
    refused(hicodit(runs, clip, out, "--tokens-only" if where == "never" else "--quiet"), capsys, needle)
    assert sorted(p.name for p in tmp_path.iterdir()) == (["blocker"] if where == "file_in_the_way" else ["speech.wav"])


@pytest.fixture
def read_only_folder(tmp_path):
    """A folder nobody can write, root included: a read-only bind mount as root, else chmod."""
    ro = tmp_path / "ro"
    ro.mkdir()
    if os.geteuid() != 0:
        ro.chmod(0o500)
        yield ro
        ro.chmod(0o700)
        return
    if shutil.which("mount") is None or \
            subprocess.run(["mount", "--bind", "-o", "ro", str(ro), str(ro)], capture_output=True).returncode != 0:
        pytest.skip("root, and no read-only bind mount allowed here")
    try:
        yield ro
    finally:
        subprocess.run(["umount", str(ro)], check=True)


def test_read_only_output_folder(runs, clip, read_only_folder, capsys):
    refused(hicodit(runs, clip, read_only_folder / "speech"), capsys,
            f"{read_only_folder}: cannot write there (permission denied or read-only)")


def manifest_of(tmp_path, rows: list[dict]) -> Path:
    manifest = tmp_path / "m.jsonl"
    manifest.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return manifest


@pytest.mark.parametrize("command", ["hicodit --out", "hicodit --manifest", "talker --manifest", "avbench"])
def test_an_output_folder_that_is_a_file_is_refused_before_any_work(runs, clip, media, tmp_path, capsys, command):
    """The output folder is checked first: the (missing) checkpoint is never reached."""
    blocker = tmp_path / "blocker"
    blocker.write_text("x")
    nowhere = str(tmp_path / "no_checkpoint")
    manifest = manifest_of(tmp_path, [{"id": "a", "ref_audio": str(media / "voice.wav"), "lip": "x"}])
    argv = {"hicodit --out": ["hicodit", "--checkpoint", nowhere, "--lip", "x", "--face", "x", "--emotion", "x",
                              "--out", str(blocker / "speech")],
            "hicodit --manifest": ["hicodit", "--checkpoint", nowhere, "--manifest", str(manifest), "--out-dir",
                                   str(blocker)],
            "talker --manifest": ["talker", "--checkpoint", nowhere, "--mode", "tts", "--manifest",
                                  str(manifest.with_name("t.jsonl")), "--out-dir", str(blocker)]}
    manifest.with_name("t.jsonl").write_text(json.dumps({"id": "a", "ref_audio": str(media / "voice.wav")}) + "\n")
    if command == "avbench":
        from avbench.run import main

        code = main(["--out-dir", str(blocker), "--quiet"])
        lines = capsys.readouterr().err.strip().splitlines()
        assert code == 1 and len(lines) == 1 and "Traceback" not in lines[0], lines
        assert lines[0].endswith(f"{blocker}: is an existing file, not a folder (choose another output folder)")
        return
    refused(argv[command], capsys, f"{blocker}: is an existing file, not a folder")
    assert blocker.read_text() == "x"


def test_a_manifest_with_a_corrupt_second_clip_writes_nothing(runs, clip, media, tmp_path, capsys):
    """Every clip's video and features are read before the first output (the README's promise)."""
    features = {"lip": str(clip / "lip.npy"), "face": str(clip / "face.npy"), "emotion": str(clip / "emo.npy")}
    manifest = manifest_of(tmp_path, [{"id": "good", "video": str(media / "clip.mp4"), **features},
                                      {"id": "bad", "video": str(media / "garbage.mp4"), **features}])
    out = tmp_path / "out"
    refused(["hicodit", "--checkpoint", str(runs["hicodit"]), "--manifest", str(manifest), "--out-dir", str(out),
             "--steps", "2", "--batch-size", "1", "--quiet"], capsys, "garbage.mp4: unreadable or corrupt", out)


def test_a_talker_manifest_with_a_corrupt_second_request_writes_nothing(runs, media, tmp_path, capsys):
    manifest = manifest_of(tmp_path, [{"id": "good", "ref_audio": str(media / "voice.wav")},
                                      {"id": "bad", "ref_audio": str(media / "garbage.mp4")}])
    out = tmp_path / "out"
    refused(["talker", "--checkpoint", str(runs["talker"]), *TINY_CODECS, "--mode", "tts", "--manifest",
             str(manifest), "--out-dir", str(out), "--batch-size", "1", "--max-seconds", "0.5", "--quiet"], capsys,
            "garbage.mp4: unreadable or corrupt media file", out)


# ---------------------------------------------------------------------------------- checkpoints
def broken_copy(run: Path, tmp_path: Path, damage: str) -> Path:
    from engine.checkpoint import find_latest

    copy = tmp_path / "run"
    shutil.copytree(run, copy)
    folder = find_latest(copy / "checkpoints")
    if damage == "truncated_weights":
        data = (folder / "model.safetensors").read_bytes()
        (folder / "model.safetensors").write_bytes(data[: len(data) // 2])
        (folder / "ema.safetensors").unlink(missing_ok=True)
    elif damage == "pickle_as_safetensors":
        import torch

        torch.save({"w": torch.ones(2)}, folder / "model.safetensors")
    elif damage == "garbage_config":
        (folder / "config.yaml").write_text("task: [unclosed\n  - : :\n")
    elif damage == "stale_codec_field":  # the codec is built lazily (a Hydra partial), after the rest
        from omegaconf import OmegaConf

        config = OmegaConf.load(folder / "config.yaml")
        config.task.codec.removed_field = 3  # a field a later version of the code dropped
        OmegaConf.save(config, folder / "config.yaml")
    return copy


@pytest.mark.parametrize("damage,needle", [
    ("truncated_weights", "model.safetensors: unreadable weights file"),
    ("pickle_as_safetensors", "model.safetensors: unreadable weights file"),
    ("garbage_config", "config.yaml: unreadable config"),
    ("stale_codec_field", "config.yaml: does not build with this version of the code: build_maskgct_codec "
                          "(codec_factory): got an unexpected keyword argument 'removed_field'"),
])
def test_damaged_checkpoints(runs, clip, tmp_path, capsys, damage, needle):
    run_dir = broken_copy(runs["hicodit"], tmp_path, damage)
    args = hicodit(runs, clip, tmp_path / "speech")
    args[args.index("--checkpoint") + 1] = str(run_dir)
    refused(args, capsys, needle, tmp_path / "speech")


@pytest.mark.parametrize("command,held,needed", [
    ("hicodit", "smoke", "infer.py hicodit needs a hicodit.task.HiCoDiTTask checkpoint"),
    ("smoke", "hicodit", "infer.py smoke needs a engine.toy.ToyTask checkpoint"),
    ("talker", "hicodit", "infer.py talker needs a talker_t2av.task.TalkerTask checkpoint"),
])
def test_wrong_checkpoint_for_the_command(runs, clip, media, tmp_path, capsys, command, held, needed):
    args = {"hicodit": hicodit(runs, clip, tmp_path / "x"),
            "smoke": ["smoke", "--checkpoint", str(runs[held]), "--quiet"],
            "talker": ["talker", "--checkpoint", str(runs[held]), "--mode", "tts", "--ref-audio",
                       str(media / "voice.wav"), "--out", str(tmp_path / "x"), "--quiet"]}[command]
    args[args.index("--checkpoint") + 1] = str(runs[held])
    line = refused(args, capsys, needed)
    assert str(runs[held]) in line


# --------------------------------------------------------------------------------------- Talker
TINY_CODECS = ["--vae-config", "whisperx_vae_tiny", "--speaker-config", "speaker_wavlm_ecapa_tiny",
               "--liax-config", "lia_x_tiny"]


def talker(runs, out, *extra):
    return ["talker", "--checkpoint", str(runs["talker"]), *TINY_CODECS, "--out", str(out), "--max-seconds", "1",
            "--quiet", *extra]


@pytest.mark.parametrize("extra,needle", [
    (["--mode", "tts", "--ref-audio", "{media}/folder.wav"], "--ref-audio {media}/folder.wav: is a folder, not a file"),
    (["--mode", "tts", "--ref-audio", "{media}/empty.wav"], "empty.wav: file is empty"),
    (["--mode", "tts", "--ref-audio", "{media}/garbage.mp4"], "garbage.mp4: unreadable or corrupt media file"),
    (["--mode", "v2a", "--ref-audio", "{media}/voice.wav", "--video", "{media}/garbage.mp4"],
     "garbage.mp4: unreadable or corrupt media file"),
    (["--mode", "a2v", "--audio", "{media}/silent.mp4", "--ref-motion", "{media}/../nope.npy"], "nope.npy: file does"),
    (["--mode", "a2v", "--audio", "{media}/silent.mp4", "--ref-video", "{media}/clip.mp4"], "silent.mp4: no audio"),
    (["--mode", "tts", "--ref-audio", "{media}/voice.wav", "--text", "x" * 90_000], "at most 1000 per request"),
    (["--mode", "tts", "--ref-audio", "{media}/voice.wav", "--prefix-seconds", "-1"], "--prefix-seconds: must be >= 0"),
    (["--mode", "tts", "--ref-audio", "{media}/voice.wav", "--max-seconds", "-1"], "--max-seconds: must be > 0"),
    (["--mode", "tts", "--ref-audio", "{media}/voice.wav", "--steps", "0"], "--steps: must be a positive integer"),
    (["--mode", "tts", "--ref-audio", "{media}/voice.wav", "--vae", "{media}/garbage.mp4"],
     "garbage.mp4: not a readable torch checkpoint"),
    (["--mode", "tts", "--ref-audio", "{media}/voice.wav", "--speaker-encoder", "{media}/voice.wav"],
     "voice.wav: not a readable torch checkpoint"),
    (["--mode", "t2av", "--ref-audio", "{media}/voice.wav", "--ref-video", "{media}/clip.mp4", "--liax",
      "{media}/clip.mp4"], "clip.mp4: not a readable torch checkpoint"),
])
def test_talker_bad_requests(runs, media, tmp_path, capsys, extra, needle):
    out = tmp_path / "out" / "hello"
    extra = [e.replace("{media}", str(media)) for e in extra]
    refused(talker(runs, out, *extra), capsys, needle.replace("{media}", str(media)))
    assert not (tmp_path / "out").exists() or not list((tmp_path / "out").iterdir())


def test_talker_reference_audio_is_cropped_to_what_the_model_uses(runs, media, tmp_path, capsys):
    """A 10-minute reference voice: only REFERENCE_SECONDS of it are decoded and embedded."""
    from engine.media import write_wav
    from talker_t2av.conditioning import REFERENCE_SECONDS

    long = tmp_path / "long.wav"
    write_wav(long, 0.1 * np.random.default_rng(0).standard_normal(600 * 16000).astype(np.float32), 16000)
    import avcodecs.speaker.model as speaker_model

    seen = []
    original = speaker_model.SpeakerEncoder.embed

    def spy(self, wav, lengths=None):
        seen.append(wav.shape[-1])
        return original(self, wav, lengths)

    speaker_model.SpeakerEncoder.embed = spy
    try:
        code, lines = run(talker(runs, tmp_path / "o", "--mode", "tts", "--ref-audio", str(long)), capsys)
    finally:
        speaker_model.SpeakerEncoder.embed = original
    assert code == 0, lines
    assert seen and max(seen) <= REFERENCE_SECONDS * 16000


def test_talker_warns_when_the_reference_video_has_no_face(runs, media, tmp_path, capsys):
    pytest.importorskip("dlib")
    args = talker(runs, tmp_path / "o", "--mode", "t2av", "--ref-audio", str(media / "voice.wav"), "--ref-video",
                  str(media / "clip.mp4"), "--no-render")
    args.remove("--quiet")
    code, lines = run(args, capsys)
    assert code == 0
    assert any("clip.mp4: no face found in its first frame; LIA-X expects a face crop" in line for line in lines)


@pytest.mark.parametrize("content,needle", [
    ("npz", "motion.pt: holds an .npz archive of 2 arrays (motion, speech), not one normalised motion array"),
    ("dict", "motion.pt: holds a dict (keys motion), not a normalised motion array"),
    ("text", "motion.pt: cannot read normalised motion: neither an .npy array nor a tensor saved with torch.save"),
    ("wrong_width", "motion.pt: expected normalised motion of shape (T, 40), got float32 (10, 3)"),
])
def test_talker_v2a_motion_file_that_holds_something_else(runs, media, tmp_path, capsys, content, needle):
    import torch

    motion = tmp_path / "motion.pt"
    if content == "npz":
        with open(motion, "wb") as f:
            np.savez(f, motion=np.zeros((10, 40), np.float32), speech=np.zeros((10, 32), np.float32))
    elif content == "dict":
        torch.save({"motion": torch.zeros(10, 40)}, motion)
    elif content == "text":
        motion.write_text("0 0 0\n")
    else:
        torch.save(torch.zeros(10, 3), motion)
    out = tmp_path / "out" / "dub"
    refused(talker(runs, out, "--mode", "v2a", "--ref-audio", str(media / "voice.wav"), "--motion", str(motion)),
            capsys, needle, out)

