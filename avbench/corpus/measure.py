"""How well the corpus carries what it claims, measured with the project's offline judges.

    python -m avbench.corpus.measure --corpus data/avbench --clips 64 --out data/avbench/measures.json
    report = measure_corpus("data/avbench", clips=64)

- speakers (GE2E, avcodecs.speaker): cosine of clip embeddings within a speaker vs across speakers, and
  leave-one-out nearest-centroid speaker identification;
- emotions (WORLD F0, evaluation.prosody): per emotion the mean F0, the F0 level relative to the same
  speaker's neutral clips (semitones) and the p5-p95 log-F0 range; speaking rate as speech seconds;
- mouth (the clips' own mouth_open vs the audio): correlation of mouth opening with log RMS energy per
  frame, at lag 0 and at the best lag within +-3 frames;
- faces (dlib, visual.tracking): share of frames where the HOG detector finds the face, correlation of
  dlib's inner-lip gap with mouth_open, nearest-centroid viseme recognition from the AV-HuBERT mouth ROI
  (22 x 22 pooled, minus the clip's mean ROI; centroids from trainval frames, scored on test frames;
  chance = always the most frequent class), and dlib's face-recognition distance
  within vs across speakers and leave-one-out speaker identification from them (ResNet descriptors of
  one frame per clip).
Clips are taken evenly from corpus.jsonl (``clips``: how many; None: all).
"""

import argparse
import json
import logging
from pathlib import Path

import numpy as np

from avcodecs.speaker.ge2e_weights import load_ge2e
from engine.atomic import atomic_path
from engine.cli import run_main
from engine.data import read_manifest
from engine.errors import UserFacingError
from engine.media import read_video
from evaluation.prosody import ProsodyJudge
from visual.mouth import crop_mouths
from visual.tracking import build_tracker
from visual.tracking.weights import LANDMARKS_68, dlib_model

log = logging.getLogger("avbench.corpus.measure")
SPEECH_RATE = 16_000


class CorpusMeasureError(UserFacingError, ValueError):
    pass


def _rows(root: Path, clips: int | None) -> list[dict]:
    rows = read_manifest(root / "corpus.jsonl", required=("speaker", "emotion"))
    if any("video" not in row for row in rows):
        raise CorpusMeasureError(f"{root}: some clips were written without their faces (--video-subsets); "
                                 "the measures read every clip's video")
    if clips is not None and clips < len(rows):
        rows = [rows[int(i)] for i in np.linspace(0, len(rows) - 1, clips).round()]
    return rows


def _read(root: Path, row: dict):
    return read_video(root / row["video"], fps=25.0, audio_sample_rate=SPEECH_RATE)


def speaker_separation(wavs: list[np.ndarray], speakers: list[str]) -> dict:
    encoder, _ = load_ge2e()
    emb = encoder.embed(wavs).numpy()  # (B, E), unit length
    names = np.array(speakers)
    cos = emb @ emb.T
    same = (names[:, None] == names[None]) & ~np.eye(len(names), dtype=bool)
    cross = names[:, None] != names[None]
    return {"ge2e_same_speaker_cosine": float(cos[same].mean()) if same.any() else None,
            "ge2e_cross_speaker_cosine": float(cos[cross].mean()) if cross.any() else None,
            "ge2e_speaker_id_accuracy": identification(emb, names, cosine=True), "speakers": len(set(speakers)),
            "clips": len(names)}


def identification(vectors: np.ndarray, names: np.ndarray, cosine: bool = False) -> float:
    """Leave-one-out nearest-centroid accuracy, by cosine (GE2E's scoring) or Euclidean distance (dlib's)."""
    hits = 0
    for i in range(len(names)):
        others = np.arange(len(names)) != i
        labels = sorted(set(names[others]))
        centroids = np.stack([vectors[others & (names == s)].mean(0) for s in labels])  # (S, E)
        if cosine:
            score = centroids @ vectors[i] / np.linalg.norm(centroids, axis=1)
        else:
            score = -((centroids - vectors[i]) ** 2).sum(1)
        hits += labels[int(np.argmax(score))] == names[i]
    return hits / len(names)


def emotion_prosody(wavs: list[np.ndarray], rows: list[dict]) -> dict:
    stats = ProsodyJudge(sample_rate=SPEECH_RATE).score(wavs, SPEECH_RATE)
    log_f0 = np.array([s.mean_log_f0 for s in stats])
    speakers = np.array([r["speaker"] for r in rows])
    emotions = np.array([r["emotion"] for r in rows])
    reference = {}  # a speaker's own level: its neutral clips, else all its clips
    for who in set(speakers):
        mine = speakers == who
        neutral = mine & (emotions == "neutral")
        reference[who] = np.nanmean(log_f0[neutral if neutral.any() else mine])
    relative = 12 * (log_f0 - np.array([reference[s] for s in speakers])) / np.log(2)
    out = {}
    for emotion in sorted(set(emotions)):
        pick = emotions == emotion
        out[emotion] = {
            "clips": int(pick.sum()),
            "f0_mean_hz": float(np.nanmean([stats[i].mean_f0_hz for i in np.flatnonzero(pick)])),
            "f0_level_semitones_vs_neutral": float(np.nanmean(relative[pick])),
            "f0_range_log": float(np.nanmean([stats[i].range_log_f0 for i in np.flatnonzero(pick)])),
            "speech_seconds": float(np.mean([rows[i]["speech_end"] - rows[i]["speech_start"]
                                             for i in np.flatnonzero(pick)])),
        }
    return out


def mouth_energy(audios: list[np.ndarray], rows: list[dict], max_lag: int = 3) -> dict:
    """Correlation of mouth_open with per-frame log RMS energy, averaged over clips."""
    hop = SPEECH_RATE // 25
    at_lag = {lag: [] for lag in range(-max_lag, max_lag + 1)}
    for audio, row in zip(audios, rows):
        opening = np.asarray(row["mouth_open"])
        frames = min(len(opening), len(audio) // hop)
        energy = np.log(np.sqrt((audio[: frames * hop].reshape(frames, hop) ** 2).mean(1)) + 1e-4)
        for lag in at_lag:  # positive lag: the mouth leads the sound
            a, b = (opening[: frames - lag], energy[lag:frames]) if lag >= 0 else (opening[-lag:frames],
                                                                                  energy[: frames + lag])
            at_lag[lag].append(np.corrcoef(a, b)[0, 1])
    means = {lag: float(np.nanmean(v)) for lag, v in at_lag.items()}
    best = max(means, key=means.get)
    return {"mouth_log_energy_correlation": means[0], "best_lag_frames": best, "at_best_lag": means[best]}


def faces(frames: list[np.ndarray], rows: list[dict]) -> dict:
    import dlib  # optional (the visual extra), and only this part needs it

    tracker = build_tracker("dlib")
    detected, lip_corr, features, labels, subsets, descriptors = [], [], [], [], [], []
    recogniser = dlib.face_recognition_model_v1(
        str(dlib_model(None, "dlib_face_recognition_resnet_model_v1.dat", "--face-model")))
    predictor = dlib.shape_predictor(str(dlib_model(None, LANDMARKS_68, "--landmark-model")))
    for video, row in zip(frames, rows):
        track = tracker.track(video, row["video"])
        detected.append(track.detected.mean())
        gap = np.linalg.norm(track.landmarks[:, 66] - track.landmarks[:, 62], axis=1)
        opening = np.asarray(row["mouth_open"])[: len(gap)]
        lip_corr.append(np.corrcoef(gap[: len(opening)], opening)[0, 1])
        crops = crop_mouths(video, track).crops[:, 4:92, 4:92].astype(np.float32)  # (T, 88, 88) model crop
        pooled = crops.reshape(len(crops), 22, 4, 22, 4).mean((2, 4)).reshape(len(crops), -1)
        pooled = (pooled - pooled.mean(1, keepdims=True)) / (pooled.std(1, keepdims=True) + 1e-6)
        features.append(pooled - pooled.mean(0))  # minus the clip's mean ROI: the speaker's look cancels
        labels.append(np.asarray(row["visemes"])[: len(pooled)])
        subsets.append(np.full(len(pooled), row["subset"]))
        middle = len(video) // 2
        box = track.boxes[middle].round().astype(int)
        shape = predictor(video[middle], dlib.rectangle(*box[:2], *(box[2:] - 1)))
        descriptors.append(np.array(recogniser.compute_face_descriptor(video[middle], shape)))
    x, y, s = np.concatenate(features), np.concatenate(labels), np.concatenate(subsets)
    train, test = s != "test", s == "test"
    accuracy = chance = None
    if train.any() and test.any():
        classes = np.unique(y[train])
        centroids = np.stack([x[train & (y == c)].mean(0) for c in classes])
        guess = classes[np.argmin(((x[test][:, None] - centroids[None]) ** 2).sum(-1), 1)]
        accuracy = float((guess == y[test]).mean())
        chance = float((y[test] == np.bincount(y[train]).argmax()).mean())
    d = np.stack(descriptors)
    names = np.array([r["speaker"] for r in rows])
    dist = np.linalg.norm(d[:, None] - d[None], axis=-1)
    same = (names[:, None] == names[None]) & ~np.eye(len(names), dtype=bool)
    cross = names[:, None] != names[None]
    return {"dlib_detected_frames": float(np.mean(detected)),
            "dlib_lip_gap_vs_mouth_open_correlation": float(np.nanmean(lip_corr)),
            "viseme_roi_nearest_centroid_accuracy": accuracy, "viseme_chance": chance,
            "viseme_classes_seen": int(len(np.unique(y))),
            "face_descriptor_distance_same_speaker": float(dist[same].mean()) if same.any() else None,
            "face_descriptor_distance_cross_speaker": float(dist[cross].mean()) if cross.any() else None,
            "face_descriptor_speaker_id_accuracy": identification(d, names)}


def measure_corpus(root, clips: int | None = 64, parts=("speakers", "emotions", "mouth", "faces")) -> dict:
    """Measure a generated corpus (see the module docstring); returns a JSON-ready dict."""
    root = Path(root)
    rows = _rows(root, clips)
    media = [_read(root, r) for r in rows]
    wavs = [m.audio for m in media]
    report = {"corpus": str(root), "clips_measured": len(rows)}
    if "speakers" in parts:
        report["speakers"] = speaker_separation(wavs, [r["speaker"] for r in rows])
    if "emotions" in parts:
        report["emotions"] = emotion_prosody(wavs, rows)
    if "mouth" in parts:
        report["mouth"] = mouth_energy(wavs, rows)
    if "faces" in parts:
        report["faces"] = faces([m.frames for m in media], rows)
    return report


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m avbench.corpus.measure", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--corpus", required=True, type=Path, help="a folder written by avbench.corpus")
    parser.add_argument("--clips", type=int, default=64, help="clips to measure, evenly spread (0: all)")
    parser.add_argument("--parts", default="speakers,emotions,mouth,faces", help="comma-separated")
    parser.add_argument("--out", type=Path, help="also write the report here (JSON)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s",
                        datefmt="%H:%M:%S")

    def run() -> int:
        report = measure_corpus(args.corpus, args.clips or None, tuple(args.parts.split(",")))
        text = json.dumps(report, indent=1)
        print(text)
        if args.out:
            with atomic_path(args.out) as tmp:
                tmp.write_text(text + "\n", encoding="utf-8")
        return 0

    return run_main(run, "avbench.corpus.measure")


if __name__ == "__main__":
    raise SystemExit(main())
