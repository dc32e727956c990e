"""The auxiliary lip reader: transcripts to CTC targets, the loss and its masking, decoding, and that
the head, wired into HiCoDiT's training loss, learns to read and teaches the front-end."""

import json

import numpy as np
import pytest
import torch

from engine.errors import ConfigError
from hicodit.data import ClipDataError, HiCoDiTDataset, collate, write_clips
from hicodit.diffusion import DiffusionConfig, MaskedDiffusion
from hicodit.lipreading import BLANK, CHARSET, VOCAB_SIZE, LipReader, ctc_loss, decode_greedy, encode_transcript
from hicodit.model import HiCoDiT, HiCoDiTConfig
from hicodit.synthetic import SyntheticClips
from hicodit.task import HiCoDiTTask
from tests.hicodit.helpers import tiny_batch, tiny_data_config


def text_of(indices) -> str:
    return "".join(CHARSET[i - 1] for i in indices)


def test_transcripts_become_characters_with_single_spaces_and_no_blank():
    assert text_of(encode_transcript("LAY BLUE WITH Q ZERO AGAIN")) == "LAY BLUE WITH Q ZERO AGAIN"
    assert text_of(encode_transcript("  don't stop,  now! ")) == "DON'T STOP NOW"
    assert text_of(encode_transcript("bin 2 now")) == "BIN NOW"  # a digit is not a character the reader has
    assert encode_transcript("").shape == (0,) and encode_transcript("--").shape == (0,)
    assert BLANK not in encode_transcript("place red at c")


def test_best_path_decoding_merges_repeats_and_drops_blanks_and_padding():
    path = [" HH_E_L_LL_OO", "AB__B"]  # "_" is the blank; the second clip is shorter
    log_probs = torch.full((2, 13, VOCAB_SIZE), -10.0)
    for b, row in enumerate(path):
        for t, c in enumerate(row):
            log_probs[b, t, BLANK if c == "_" else CHARSET.index(c) + 1] = 0.0
    mask = torch.tensor([[True] * 13, [True] * 5 + [False] * 8])
    log_probs[1, 5:, CHARSET.index("Z") + 1] = 1.0  # what padding says is never read
    assert decode_greedy(log_probs, mask) == [" HELLO", "ABB"]


def test_a_clip_without_transcript_counts_nothing_and_one_with_too_few_frames_is_finite():
    torch.manual_seed(0)
    log_probs = torch.randn(3, 8, VOCAB_SIZE).log_softmax(-1).requires_grad_()
    mask = torch.ones(3, 8, dtype=torch.bool)
    texts = [encode_transcript("AB"), torch.zeros(0, dtype=torch.long), encode_transcript("ABCDEFGHIJKL")]
    targets = torch.nn.utils.rnn.pad_sequence([torch.as_tensor(t) for t in texts], batch_first=True)
    lengths = torch.tensor([len(t) for t in texts])
    loss = ctc_loss(log_probs, mask, targets, lengths)
    alone = ctc_loss(log_probs[:1], mask[:1], targets[:1, :2], lengths[:1])
    # the clip without text adds nothing, the one whose 12 characters cannot fit 8 frames adds zero
    assert torch.allclose(loss, alone / 2)
    loss.backward()
    assert torch.isfinite(log_probs.grad).all() and log_probs.grad[1].abs().sum() == 0


def test_the_reader_of_a_clip_does_not_depend_on_the_padding_its_batch_adds():
    torch.manual_seed(0)
    reader = LipReader(16, hidden=8)
    for p in reader.parameters():  # biases too, so padding would show if it leaked
        torch.nn.init.normal_(p)
    short = torch.randn(1, 6, 16)
    batch = torch.cat([torch.cat([short, torch.zeros(1, 4, 16)], 1), torch.randn(1, 10, 16)])
    mask = torch.tensor([[True] * 6 + [False] * 4, [True] * 10])
    assert torch.allclose(reader(short, torch.ones(1, 6, dtype=torch.bool))[0], reader(batch, mask)[0, :6], atol=1e-5)


def test_the_reader_learns_to_read_a_character_sequence_off_its_features():
    # each frame's feature names the character spoken (with noise), characters last 2-3 frames
    gen = torch.Generator().manual_seed(0)
    texts = ["BIN BLUE", "SET RED", "LAY WHITE", "PLACE GREEN"]
    table = torch.randn(VOCAB_SIZE, 16, generator=gen)
    feats, targets = [], []
    for text in texts:
        ids = torch.from_numpy(encode_transcript(text))
        frames = ids.repeat_interleave(torch.randint(2, 4, (len(ids),), generator=gen))
        feats.append(table[frames] + 0.3 * torch.randn(len(frames), 16, generator=gen))
        targets.append(ids)
    x = torch.nn.utils.rnn.pad_sequence(feats, batch_first=True)
    mask = torch.arange(x.shape[1])[None] < torch.tensor([len(f) for f in feats])[:, None]
    y = torch.nn.utils.rnn.pad_sequence(targets, batch_first=True)
    lengths = torch.tensor([len(t) for t in targets])
    torch.manual_seed(0)
    reader = LipReader(16, hidden=32, layers=2)
    opt = torch.optim.Adam(reader.parameters(), lr=1e-2)
    first = None
    for _ in range(150):
        loss = ctc_loss(reader(x, mask), mask, y, lengths)
        first = first if first is not None else float(loss.detach())
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert float(loss.detach()) < 0.1 * first
    assert decode_greedy(reader(x, mask), mask) == texts


def manifest_with_text(tmp_path, texts, frames=(12, 12)):
    synth = SyntheticClips(tiny_data_config(len(texts), frames))
    manifest = write_clips(tmp_path, [synth.clip(i) for i in range(len(texts))])
    lines = [json.loads(line) for line in manifest.read_text().splitlines()]
    rows = [{**row, **({"text": t} if t is not None else {})} for row, t in zip(lines, texts)]
    manifest.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return manifest


def test_transcripts_reach_the_batch_and_a_crop_has_none(tmp_path):
    manifest = manifest_with_text(tmp_path, ["BIN BLUE", "SET RED NOW"])
    ds = HiCoDiTDataset(tiny_data_config(train_manifest=str(manifest), transcript_key="text"))
    batch = collate([ds[0], ds[1]])
    assert batch["transcript_lengths"].tolist() == [8, 11]
    assert text_of(batch["transcript"][1].tolist()) == "SET RED NOW"
    cropped = HiCoDiTDataset(tiny_data_config(train_manifest=str(manifest), transcript_key="text", max_frames=8))
    assert cropped[0]["transcript"].shape == (0,)  # the text is the whole clip's, not the crop's
    plain = HiCoDiTDataset(tiny_data_config(train_manifest=str(manifest)))
    assert "transcript" not in collate([plain[0]])


def test_a_clip_without_its_transcript_stops_with_the_clip_and_the_key(tmp_path):
    manifest = manifest_with_text(tmp_path, ["BIN BLUE", None])
    ds = HiCoDiTDataset(tiny_data_config(train_manifest=str(manifest), transcript_key="text"))
    with pytest.raises(ClipDataError, match="'clip_00001': no transcript 'text'"):
        ds[1]


def test_the_ctc_loss_joins_training_and_reaches_the_front_end():
    torch.manual_seed(0)
    net = HiCoDiT(HiCoDiTConfig.tiny(lip_input="frontend", lip_reader=True))
    module = MaskedDiffusion(net, DiffusionConfig(lip_ctc_weight=0.5)).train()
    batch = tiny_batch(clips=2, frames=(12, 12))
    batch["lip"] = torch.randint(0, 255, (2, 12, 88, 88), dtype=torch.uint8)
    batch["transcript"] = torch.from_numpy(np.stack([encode_transcript("BIN RED"), encode_transcript("SET RED")]))
    batch["transcript_lengths"] = torch.tensor([7, 7])
    loss, logs = module(batch)
    assert "lip_ctc" in logs and float(logs["lip_ctc"]) > 0
    loss.backward()
    assert net.lip_frontend.stem.weight.grad.abs().sum() > 0 and net.lip_reader.out.weight.grad.abs().sum() > 0
    del batch["transcript"]
    with pytest.raises(KeyError, match="data.transcript_key"):
        module(batch)


def test_the_lip_reader_settings_must_agree():
    # ConfigError is a UserFacingError: train.py prints its one line, no traceback
    with pytest.raises(ConfigError, match="model.lip_reader=true"):
        MaskedDiffusion(HiCoDiT(HiCoDiTConfig.tiny()), DiffusionConfig(lip_ctc_weight=1.0))
    with pytest.raises(ConfigError, match="needs data.transcript_key"):
        HiCoDiTTask(HiCoDiTConfig.tiny(lip_reader=True), tiny_data_config(), DiffusionConfig(lip_ctc_weight=1.0))
    with pytest.raises(ConfigError, match="trains nothing"):
        HiCoDiTTask(HiCoDiTConfig.tiny(lip_reader=True), tiny_data_config(transcript_key="text"), DiffusionConfig())
    with pytest.raises(ConfigError, match="lip_ctc_weight and lip_unit_weight must be >= 0"):
        DiffusionConfig(lip_ctc_weight=-1.0)


def test_a_run_with_the_lip_reader_trains_it_and_inference_writes_what_it_reads(tmp_path, capsys):
    import infer
    from tests.conftest import build_trainer, compose

    texts = ["BIN BLUE AT A", "SET RED NOW", "LAY WHITE", "PLACE GREEN BY B"]
    manifest = manifest_with_text(tmp_path / "data", texts, frames=(14, 14))
    run = tmp_path / "run"
    cfg = compose("experiment=hicodit_tiny", "data=hicodit_manifest", f"data.train_manifest={manifest}",
                  "data.transcript_key=text", "model.lip_reader=true", "task.diffusion.lip_ctc_weight=1.0",
                  f"trainer.out_dir={run}", "trainer.max_steps=120", "trainer.batch_size=4", "trainer.lr=3e-3",
                  "trainer.warmup_steps=10", "trainer.save_every=120", "trainer.val_every=120",
                  "trainer.log_every=20", "trainer.progress=false", "trainer.num_workers=0", "task.sampler.steps=2")
    build_trainer(cfg).fit()
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    ctc = [row["train/lip_ctc"] for row in rows if "train/lip_ctc" in row]
    assert ctc[-1] < 0.5 * ctc[0], ctc  # it learns to read the four clips
    read = (run / "samples" / "step_00000120" / "lip_reading.txt").read_text().splitlines()
    assert [line.split("\t")[0] for line in read] == [f"clip_{i:05d}" for i in range(4)]

    out = tmp_path / "out"
    assert infer.main(["hicodit", "--checkpoint", str(run), "--manifest", str(manifest), "--out-dir", str(out),
                       "--steps", "2", "--read-lips", "--tokens-only", "--quiet"]) == 0
    readings = [(out / f"clip_{i:05d}.lips.txt").read_text().strip() for i in range(4)]
    assert sum(r == t for r, t in zip(readings, texts)) >= 2, readings
    assert (out / "clip_00000.tokens.npy").is_file()


def test_reading_lips_with_a_model_without_a_reader_is_one_clear_line(tmp_path, capsys):
    import infer
    from tests.conftest import build_trainer, compose

    manifest = manifest_with_text(tmp_path / "data", ["BIN BLUE"], frames=(10, 10))
    run = tmp_path / "run"
    build_trainer(compose("experiment=hicodit_tiny", "data=hicodit_manifest", f"data.train_manifest={manifest}",
                          f"trainer.out_dir={run}", "trainer.max_steps=1", "trainer.batch_size=1",
                          "trainer.save_every=1", "trainer.val_every=0", "trainer.progress=false",
                          "trainer.num_workers=0")).fit()
    assert infer.main(["hicodit", "--checkpoint", str(run), "--manifest", str(manifest), "--out-dir",
                       str(tmp_path / "out"), "--read-lips", "--tokens-only", "--quiet"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].endswith("has no lip reader (trained without model.lip_reader)"), err
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


# ------------------------------------------------------------------------------ the lip-unit head


def test_the_lip_unit_loss_is_levels_one_and_two_read_off_the_lips_alone():
    torch.manual_seed(0)
    net = HiCoDiT(HiCoDiTConfig.tiny(lip_input="frontend", frontend_arch="linear", lip_unit_head=True))
    module = MaskedDiffusion(net, DiffusionConfig(lip_unit_weight=0.5)).train()
    batch = tiny_batch(clips=2, frames=(8, 12))  # two lengths: padded token frames must not count
    batch["lip"] = torch.randint(0, 255, (*batch["frame_mask"].shape, 88, 88), dtype=torch.uint8)
    assert not batch["token_mask"].all()
    cond, _ = module.conditions(batch)
    # the same loss written out clip by clip, frame by frame: mean over real token frames, summed over levels 1-2
    logits = net.lip_unit_head(cond.lip).view(2, -1, 2, net.cfg.codebook_size).log_softmax(-1)
    lengths = batch["token_mask"].sum(1).tolist()
    terms = [-logits[i, f, q, batch["tokens"][i, q, f]] for i in range(2) for f in range(lengths[i]) for q in range(2)]
    expected = torch.stack(terms).sum() / batch["token_mask"].sum()
    assert torch.allclose(module.lip_unit_loss(cond.lip, batch["tokens"], batch["token_mask"]), expected, atol=1e-5)
    loss, logs = module(batch)
    assert "lip_unit" in logs
    loss.backward()
    assert net.lip_frontend.proj.weight.grad.abs().sum() > 0 and net.lip_unit_head.weight.grad.abs().sum() > 0


def test_the_lip_unit_settings_must_agree():
    with pytest.raises(ConfigError, match="model.lip_unit_head=true"):
        MaskedDiffusion(HiCoDiT(HiCoDiTConfig.tiny()), DiffusionConfig(lip_unit_weight=1.0))
    with pytest.raises(ConfigError, match="trains nothing"):
        HiCoDiTTask(HiCoDiTConfig.tiny(lip_unit_head=True), tiny_data_config(), DiffusionConfig())
    with pytest.raises(ConfigError, match="lip_unit_weight must be >= 0"):
        DiffusionConfig(lip_unit_weight=-1.0)
