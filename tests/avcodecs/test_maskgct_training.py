"""Training the MaskGCT-layout codec: it learns, the GAN's gradients stay apart, codebooks are kept alive."""

import dataclasses
import json

import pytest
import torch
from hydra.utils import instantiate
from safetensors.torch import load_file

from avcodecs.maskgct import (
    CodecWeightsError,
    MaskGCTCodec,
    MaskGCTCodecConfig,
    build_maskgct_codec,
    save_maskgct_weights,
)
from avcodecs.maskgct.codebooks import CodebookMaintenance, spherical_kmeans
from avcodecs.maskgct.data import AudioCropDataset, CodecDataConfig, SyntheticSpeechDataset
from avcodecs.maskgct.objective import CodecLossConfig, CodecObjective
from avcodecs.maskgct.task import MaskGCTCodecTask
from engine.checkpoint import load_module
from engine.errors import ConfigError
from engine.media import MediaError, read_audio, write_wav
from engine.utils import seed_everything
from tests.conftest import build_trainer, compose, free_port, run_cli

SEGMENT = 12_000  # 0.5 s, 25 frames


def batch_of(n: int, seed: int = 0) -> dict:
    data = SyntheticSpeechDataset(n, 24_000, SEGMENT, 480, seed)
    return {"audio": torch.stack([data[i]["audio"] for i in range(n)])}


def fine_tune(module: CodecObjective, params, steps: int = 30) -> list[dict]:
    """``steps`` AdamW steps (lr 3e-3) of the codec's loss on one fixed batch; each step's logs."""
    optimizer = torch.optim.AdamW(params, lr=3e-3)
    batch, history = batch_of(2), []
    for _ in range(steps):
        losses, logs = module.losses(batch)
        optimizer.zero_grad()
        losses["generator"].backward()
        optimizer.step()
        history.append(logs)
    return history


def test_tiny_codec_experiment_lowers_the_mel_loss(tmp_path):
    cfg = compose("experiment=codec_maskgct_tiny", f"trainer.out_dir={tmp_path}", "trainer.max_steps=60",
                  "trainer.batch_size=4", "trainer.lr=3e-3", "trainer.warmup_steps=5",
                  "trainer.val_every=60", "trainer.log_every=5", "trainer.save_every=60",
                  "trainer.progress=false", "data.synthetic_items=16", "data.synthetic_val_items=2")
    trainer = build_trainer(cfg)
    task = trainer.task
    seed_everything(cfg.trainer.seed)  # the weights the trainer starts from
    untrained = task.validate(task.build_module().eval(), task.collate([task.val_dataset()[i] for i in range(2)]),
                              None, 0)["mel"]
    trainer.fit()
    rows = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    trained = next(r["val/mel"] for r in rows if "val/mel" in r)
    assert trained < 0.85 * untrained, (trained, untrained)  # held-out clips, 4.9 against 6.2 measured
    assert any("val/mel_level0" in r for r in rows)
    assert (tmp_path / "samples" / "step_00000060" / "recon_all_levels.wav").is_file()

    # the trained codec exports to the released layout and loads back as a frozen tokenizer
    from scripts.export_maskgct_codec import main as export

    assert export(["--checkpoint", str(tmp_path), "--out", str(tmp_path / "export")]) == 0
    trained, _, _ = load_module(tmp_path)
    codec = build_maskgct_codec(MaskGCTCodecConfig.tiny(), weights=tmp_path / "export")
    wav = batch_of(1, seed=9)["audio"]
    with torch.no_grad():
        assert torch.equal(codec.encode(wav), trained.codec.encode(wav))


def test_a_collapse_is_told_from_healthy_training_by_codebook_usage():
    """Shares of the usable codes a validation batch used, measured on the full benchmark's codec:
    0.031 after the collapse at step 150, 0.355 in the healthy run, both at step 500."""
    task = MaskGCTCodecTask(MaskGCTCodecConfig.tiny(), CodecDataConfig())
    assert "codebooks collapsed" in task.diagnose({"codebook_usage_of_usable": 0.031}, 500)
    assert task.diagnose({"codebook_usage_of_usable": 0.355}, 500) is None
    assert task.diagnose({"codebook_usage_of_usable": 0.031}, 300) is None  # early codebooks are sparse anyway
    never = MaskGCTCodecTask(MaskGCTCodecConfig.tiny(), CodecDataConfig(), collapse_usage=None)
    assert never.diagnose({"codebook_usage_of_usable": 0.0}, 10_000) is None
    with pytest.raises(ValueError, match="collapse_usage"):
        MaskGCTCodecTask(MaskGCTCodecConfig.tiny(), CodecDataConfig(), collapse_usage=1.5)


def test_codebook_usage_is_measured_against_what_the_batch_could_use():
    """25 frames cannot use 64 codes: a batch whose every frame picks its own code uses all it could."""
    task = MaskGCTCodecTask(MaskGCTCodecConfig.tiny(), CodecDataConfig())
    module = CodecObjective(MaskGCTCodecConfig.tiny(), CodecLossConfig()).eval()
    distinct = torch.arange(25).repeat(module.codec.num_levels, 1)[None]  # (1, Q, 25): every frame its own code
    module.codec.quantizer.encode = lambda latent: distinct
    metrics = task.validate(module, batch_of(1), None, step=0)
    assert metrics["codebook_usage"] == pytest.approx(25 / 64)
    assert metrics["codebook_usage_of_usable"] == pytest.approx(1.0)


def tiny_gan() -> CodecObjective:
    loss = CodecLossConfig(adversarial=True, periods=(2, 3), stft_sizes=(512, 256), period_channels=2,
                           stft_channels=4, mel_windows=(64, 512), mel_bins=(10, 40), kmeans_frames=128)
    return CodecObjective(MaskGCTCodecConfig.tiny(), loss).train()


def test_gan_each_network_gets_only_its_own_gradient():
    torch.manual_seed(0)
    module = tiny_gan()
    batch = batch_of(2)
    codec_params = list(module.codec.parameters())
    critic_params = list(module.discriminators.parameters())

    def grads_of(which: str):
        module.zero_grad(set_to_none=True)
        torch.manual_seed(1)  # same quantizer dropout draw every time
        losses, _ = module.losses(batch)
        (losses["generator"] + losses["discriminator"] if which == "sum" else losses[which]).backward()
        return [p.grad for p in codec_params], [p.grad for p in critic_params]

    module.losses(batch)  # first forward records k-means frames; the next ones run the same codebooks
    codec_g, critic_g = grads_of("generator")
    assert all(g is None for g in critic_g)
    assert sum(g.abs().sum() for g in codec_g if g is not None) > 0
    codec_d, critic_d = grads_of("discriminator")
    assert all(g is None for g in codec_d)
    assert all(g is not None for g in critic_d)
    codec_s, critic_s = grads_of("sum")
    for summed, own in zip(codec_s + critic_s, codec_g + critic_d):
        if own is not None:
            torch.testing.assert_close(summed, own)

    optimizer = torch.optim.AdamW(module.parameters(), lr=1e-3)
    before = [p.detach().clone() for p in critic_params]
    optimizer.step()
    assert any(not torch.equal(a, p) for a, p in zip(before, critic_params))


def test_integrated_phase_codec_is_fine_tuned_from_a_predicted_phase_one(tmp_path):
    torch.manual_seed(0)
    predicted = MaskGCTCodec(MaskGCTCodecConfig.tiny())
    folder = save_maskgct_weights(predicted, tmp_path / "predicted")
    integrated = MaskGCTCodecConfig.tiny(vocos_phase="integrated")
    loss = CodecLossConfig(phase_advance_weight=1.0, mel_windows=(64, 512), mel_bins=(10, 40))
    task = MaskGCTCodecTask(integrated, data=None, loss=loss, init_weights=str(folder))
    module = task.build_module().train()
    head, source = module.codec.decoder.model.head, predicted.decoder.model.head
    bins = head.out.out_features // 2
    torch.testing.assert_close(head.out.weight[:bins], source.out.weight[:bins])  # magnitudes kept
    assert not head.out.weight[bins:].any() and not head.out.bias[bins:].any()  # advances at the centres
    with pytest.raises(CodecWeightsError, match="trained with vocos_phase=predicted"):
        build_maskgct_codec(integrated, weights=folder)  # only a fine-tune may convert

    history = fine_tune(module, module.parameters())
    assert all(torch.isfinite(logs["phase_advance"]) for logs in history)
    mel = [logs["mel"].item() for logs in history]
    assert sum(mel[-5:]) < 0.9 * sum(mel[:5]), mel

    with pytest.raises(ValueError, match="needs codec.config.vocos_phase=integrated"):
        CodecObjective(MaskGCTCodecConfig.tiny(), loss)  # the loss would have nothing to score


def test_decoder_only_training_keeps_every_token_and_improves_the_decoder(tmp_path):
    """A decoder fine-tuned on a trained codec's codes: the encoder, codebooks and so every token stay
    exactly as loaded (a model trained on those tokens stays valid), the decoder learns."""
    torch.manual_seed(0)
    folder = save_maskgct_weights(MaskGCTCodec(MaskGCTCodecConfig.tiny()), tmp_path / "codec")
    task = MaskGCTCodecTask(MaskGCTCodecConfig.tiny(), data=None, init_weights=str(folder),
                            loss=CodecLossConfig(decoder_only=True))
    module = task.build_module().train()
    vocoder = module.codec.decoder.model  # the decoder's quantizer (the codebooks) stays frozen too
    frozen = {k: v.clone() for k, v in module.codec.state_dict().items() if not k.startswith("decoder.model.")}
    trainable = [p for p in module.parameters() if p.requires_grad]
    assert [id(p) for p in trainable] == [id(p) for p in vocoder.parameters()]
    held_out = batch_of(1, seed=9)["audio"]
    with torch.no_grad():
        tokens = module.codec.encode(held_out)
    mel = [logs["mel"].item() for logs in fine_tune(module, trainable)]
    assert sum(mel[-5:]) < 0.9 * sum(mel[:5]), mel
    for name, before in frozen.items():
        assert torch.equal(module.codec.state_dict()[name], before), name  # no codebook upkeep either
    with torch.no_grad():
        assert torch.equal(module.codec.encode(held_out), tokens)

    with pytest.raises(ValueError, match="name that codec in task.init_weights"):
        MaskGCTCodecTask(MaskGCTCodecConfig.tiny(), data=None, loss=CodecLossConfig(decoder_only=True))


def test_quantizer_dropout_keeps_a_prefix_of_levels():
    torch.manual_seed(0)
    module = CodecObjective(MaskGCTCodecConfig.tiny(), CodecLossConfig())
    quantizer = module.codec.quantizer
    latent = module.codec.encode_latent(batch_of(3)["audio"])
    keep = torch.tensor([1, 5, 12])
    out = quantizer(latent, keep)
    for b, k in enumerate(keep.tolist()):
        torch.testing.assert_close(out.quantized[b], quantizer.embed(out.codes[b : b + 1, :k])[0], atol=1e-5, rtol=1e-5)
    kept = module.sample_kept_levels(4000, torch.device("cpu"))
    assert kept.min() == 1 and kept.max() == 12
    assert 0.4 < (kept < 12).float().mean() < 0.55  # about half the items dropped (some draw 12 anyway)


def test_kmeans_init_then_dead_code_restart():
    torch.manual_seed(0)
    module = CodecObjective(MaskGCTCodecConfig.tiny(), CodecLossConfig(kmeans_frames=256, dead_after=3)).train()
    quantizer, upkeep = module.codec.quantizer, module.codebooks
    batch = batch_of(4)
    with torch.no_grad():
        module(batch)  # records frames
        assert int(upkeep.init_state) == 1
        books = quantizer.stacked_codebooks().clone()
        module(batch)  # fits k-means before quantizing
        assert int(upkeep.init_state) == 2
        assert not torch.equal(books, quantizer.stacked_codebooks())
        frames = upkeep.kmeans_latents.t()[None]
        used = [len(c.unique()) for c in quantizer.encode(frames)[0]]
        assert min(used) > 0.5 * quantizer.codebook_size, used  # random codebooks use a handful

        # mark every code of level 2 long unused: the next forward replaces them with recent residuals
        upkeep.last_used[2] = -100
        recent = upkeep.recent[2].clone()
        module(batch)
        torch.testing.assert_close(quantizer.quantizers[2].codebook.weight, recent)
        assert (upkeep.last_used[2] > 0).all()


def test_spherical_kmeans_finds_separated_directions():
    generator = torch.Generator().manual_seed(0)
    centres = torch.eye(4) * torch.tensor([1.0, 2.0, 3.0, 4.0])[:, None]
    points = centres.repeat_interleave(50, 0) + 0.01 * torch.randn(200, 4, generator=generator)
    found = spherical_kmeans(points, 4, 10, generator)
    order = found.abs().argmax(1).argsort()
    torch.testing.assert_close(found[order], centres, atol=0.01, rtol=0)  # means keep the magnitudes


def test_maintenance_state_is_checkpointed():
    upkeep = CodebookMaintenance(12, 64, 8, 32, kmeans_frames=16)
    assert {"init_state", "kmeans_latents", "forwards", "last_used", "recent"} <= set(upkeep.state_dict())


def test_audio_crop_dataset_reads_a_manifest(tmp_path):
    from engine.data import write_manifest

    for name, seconds in (("long", 1.0), ("short", 0.2)):
        write_wav(tmp_path / f"{name}.wav", torch.zeros(int(seconds * 16_000)), 16_000)  # resampled to 24 kHz
    write_manifest(tmp_path / "m.jsonl", [{"id": n, "num_frames": 10, "audio": f"{n}.wav"} for n in ("long", "short")])
    data = AudioCropDataset(str(tmp_path / "m.jsonl"), 24_000, SEGMENT, 480)
    assert data.lengths == [25, 25]
    assert [data[i]["audio"].shape for i in range(2)] == [(SEGMENT,), (SEGMENT,)]
    write_manifest(tmp_path / "bad.jsonl", [{"id": "x", "num_frames": 10, "audio": "missing.wav"}])
    with pytest.raises(MediaError, match="missing.wav"):
        AudioCropDataset(str(tmp_path / "bad.jsonl"), 24_000, SEGMENT, 480)[0]


def test_audio_cache_decodes_each_clip_once_and_changes_no_item(tmp_path, monkeypatch):
    from avcodecs.maskgct import data as data_module
    from engine.data import write_manifest

    write_wav(tmp_path / "a.wav", torch.randn(24_000).clamp(-1, 1) * 0.5, 24_000)
    write_manifest(tmp_path / "m.jsonl", [{"id": "a", "num_frames": 50, "audio": "a.wav"}])
    expected = AudioCropDataset(str(tmp_path / "m.jsonl"), 24_000, SEGMENT, 480, random_crop=False)[0]["audio"]
    reads = []
    monkeypatch.setattr(data_module, "read_audio", lambda *args: reads.append(args) or read_audio(*args))
    cached = AudioCropDataset(str(tmp_path / "m.jsonl"), 24_000, SEGMENT, 480, random_crop=False, cache=True)
    for _ in range(3):
        torch.testing.assert_close(cached[0]["audio"], expected, rtol=0, atol=0)
    cached.random_crop = True  # random crops come from the cached clip too, each its own
    crops = torch.stack([cached[0]["audio"] for _ in range(4)])
    assert len(reads) == 1 and (crops[1:] != crops[0]).any(dim=1).all()
    with pytest.raises(ConfigError, match="data.cache_audio='nonsense': must be true or false"):
        CodecDataConfig(cache_audio="nonsense")


def test_paper_experiment_composes():
    cfg = compose("experiment=codec_maskgct", "data.manifest=/data/train.jsonl")
    task = instantiate(cfg.task)
    assert task.codec_cfg == MaskGCTCodecConfig.paper()
    assert task.loss_cfg.adversarial and task.loss_cfg.quantizer_dropout == 0.5
    assert (task.loss_cfg.commitment_weight, task.loss_cfg.codebook_weight) == (0.25, 1.0)


def test_integrated_phase_fine_tune_composes():
    cfg = compose("experiment=bench_codec", "codec=maskgct_small_integrated", "codec.weights=/runs/codec/weights",
                  "task.loss.phase_advance_weight=5", "data.manifest=/data/train.jsonl")
    task = instantiate(cfg.task)
    small = instantiate(compose("experiment=bench_codec", "data.manifest=/data/train.jsonl").task).codec_cfg
    assert task.codec_cfg == dataclasses.replace(small, vocos_phase="integrated")  # same sizes, other head
    assert task.init_weights == "/runs/codec/weights" and not task.loss_cfg.kmeans_init


def test_ddp_ranks_keep_identical_codebooks_through_kmeans_and_restarts(tmp_path):
    """Codebook upkeep changes parameters outside the optimizer; with different data per rank the
    ranks would drift apart unless every change is decided from rank 0's broadcast buffers."""
    out = tmp_path / "result.json"
    run_cli(["-m", "torch.distributed.run", "--nproc_per_node=2", f"--master_port={free_port()}",
             "-m", "tests.avcodecs.ddp_codebooks", str(out)])
    result = json.loads(out.read_text())
    assert result["init_state"] == 2 and result["replaced"] > 100, result
    assert result["max_difference"] == 0.0, result


@pytest.mark.parametrize("stop_after", [1, 3])  # before / after the k-means fit
def test_interrupted_codec_run_resumes_bitwise(tmp_path, stop_after):
    """The upkeep state (k-means stage, usage, recent residuals) lives in checkpointed buffers."""
    common = ("experiment=codec_maskgct_tiny", "trainer.max_steps=6", "trainer.save_every=6", "trainer.batch_size=2",
              "trainer.progress=false", "trainer.val_every=0", "task.loss.dead_after=2", "data.synthetic_items=8",
              "data.segment_seconds=0.2")

    def fit(out, *extra):
        cfg = compose(*common, f"trainer.out_dir={out}", *extra)
        build_trainer(cfg).fit()

    fit(tmp_path / "straight")
    fit(tmp_path / "resumed", f"trainer.stop_after_steps={stop_after}")
    fit(tmp_path / "resumed")
    a, b = (load_file(str(tmp_path / run / "checkpoints/step_00000006/model.safetensors"))
            for run in ("straight", "resumed"))
    assert int(a["codebooks.init_state"]) == 2
    assert all(torch.equal(a[k], b[k]) for k in a)
