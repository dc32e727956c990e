"""Speed of WhisperX-VAE encode / decode and of the WavLM + ECAPA speaker encoder at full size.

Reports seconds of audio processed per second of compute (higher is better) for a clip of
--seconds at batch --batch, median over --repeats timed calls after --warmup calls. Weights are
random unless checkpoints are given (speed does not depend on them). Examples:

    python scripts/bench_whisperx_vae.py --device cpu --threads 2
    python scripts/bench_whisperx_vae.py --device cuda --amp bf16 --batch 8
"""

import argparse
import contextlib
import json
import logging
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from avcodecs.speaker import SpeakerEncoderConfig, build_speaker_encoder  # noqa: E402
from avcodecs.whisperx_vae import WhisperEncoderConfig, WhisperXVAEConfig, build_whisperx_vae  # noqa: E402
from avcodecs.whisperx_vae.frontend import log_mel_spectrogram, pad_or_trim, resample  # noqa: E402

log = logging.getLogger("bench")
AMP = {"none": None, "bf16": torch.bfloat16, "fp16": torch.float16}


def timed(fn, device: torch.device, warmup: int, repeats: int) -> float:
    """Median wall time of fn() in seconds."""
    def sync():
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        sync()
        start = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1, ...")
    parser.add_argument("--seconds", type=float, default=10.0, help="clip length (at most 30 for encode)")
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument("--amp", choices=list(AMP), default="none", help="autocast dtype (GPU)")
    parser.add_argument("--parts", default="encode,decode,speaker",
                        help="comma list of encode, decode, speaker; parts of encode: dac_encoder, whisper "
                             "(the Whisper branch: resample, log-mel, encoder)")
    parser.add_argument("--size", choices=["paper", "tiny"], default="paper", help="tiny: a smoke test of the script")
    parser.add_argument("--checkpoint", default=None, help="WhisperX-VAE model.ckpt (optional)")
    parser.add_argument("--speaker-checkpoint", default=None, help="wavlm_large_finetune.pth (optional)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    parts = [p.strip() for p in args.parts.split(",") if p.strip()]
    amp = AMP[args.amp]
    autocast = (torch.autocast(device.type, dtype=amp) if amp is not None else contextlib.nullcontext())
    results = []

    def report(name: str, seconds_of_audio: float, wall: float) -> None:
        results.append((name, wall, seconds_of_audio / wall))
        log.info("%-8s %8.3f s per call   %8.2f s of audio / s", name, wall, seconds_of_audio / wall)

    audio_seconds = args.batch * args.seconds
    torch.manual_seed(0)
    if {"encode", "decode", "whisper", "dac_encoder"} & set(parts):
        log.info("building WhisperX-VAE (%s size)...", args.size)
        config = WhisperXVAEConfig() if args.size == "paper" else WhisperXVAEConfig(
            encoder_dim=4, hidden_dim=32, decoder_dim=32, whisper=WhisperEncoderConfig(dim=32, heads=2, layers=2))
        codec = build_whisperx_vae(config, weights=args.checkpoint).to(device)
        wav = 0.1 * torch.randn(args.batch, int(args.seconds * codec.sample_rate), device=device)
        with torch.inference_mode(), autocast:
            if "encode" in parts:
                report("encode", audio_seconds, timed(lambda: codec.encode(wav), device, args.warmup, args.repeats))
            if "dac_encoder" in parts:
                report("dac_enc", audio_seconds, timed(lambda: codec.CodecEnc(wav[:, None]), device, args.warmup,
                                                       args.repeats))
            if "whisper" in parts:
                def whisper_branch():
                    mel = log_mel_spectrogram(pad_or_trim(resample(wav, 24000, 16000)))
                    return codec.semantic_model(mel)
                report("whisper", audio_seconds, timed(whisper_branch, device, args.warmup, args.repeats))
            if "decode" in parts:
                latent = torch.randn(args.batch, codec.num_frames(wav.shape[-1]), codec.latent_dim, device=device)
                report("decode", audio_seconds, timed(lambda: codec.decode(latent), device, args.warmup, args.repeats))
        del codec
    if "speaker" in parts:
        log.info("building WavLM + ECAPA-TDNN (%s size)...", args.size)
        config = SpeakerEncoderConfig() if args.size == "paper" else SpeakerEncoderConfig(
            hidden_size=32, layers=2, heads=2, intermediate_size=64, conv_dim=16, channels=32, embed_dim=16)
        speaker = build_speaker_encoder(config, weights=args.speaker_checkpoint).to(device)
        wav16 = 0.1 * torch.randn(args.batch, int(args.seconds * speaker.sample_rate), device=device)
        with torch.inference_mode(), autocast:
            report("speaker", audio_seconds, timed(lambda: speaker.embed(wav16), device, args.warmup, args.repeats))

    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"cpu x{torch.get_num_threads()} threads"
    print(f"\n{name}, batch {args.batch} x {args.seconds:g} s, amp {args.amp}, median of {args.repeats}")
    print("| part | s per call | s of audio / s |\n|---|---|---|")
    for part, wall, speed in results:
        print(f"| {part} | {wall:.3f} | {speed:.2f} |")
    # the same figures as one JSON line (scripts/gpu_suite.py reads it)
    print(json.dumps({k: v for part, wall, speed in results
                      for k, v in ((f"{part}_s", wall), (f"{part}_audio_s_per_s", speed), (f"{part}_rtf", 1 / speed))}))


if __name__ == "__main__":
    main()
