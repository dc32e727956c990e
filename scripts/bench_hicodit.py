"""HiCoDiT speed: training throughput and sampling real-time factor (RTF).

    python scripts/bench_hicodit.py --device cuda --bf16                    # the paper-size model
    python scripts/bench_hicodit.py --device cpu --train-batch 2 --sample-steps-run 2   (extrapolated)

Training: AdamW steps on random 10 s clips (tokens, lip features, identity, emotion) through the
full objective (masking, condition dropout, DSE loss, L1 identity loss), reported as codec tokens
per second (12 levels x 50 Hz frames) and as model-FLOPs utilisation (MFU) against ``--peak-tflops``
(default: H100 SXM dense bf16, 989). FLOPs are counted analytically: 6 x (matmul weights touched
per frame) + 12 x L x width per attention layer, per frame (forward + backward).

Sampling: one clip of ``--seconds`` speech, batch 1, ``--sample-steps`` Euler steps with full
multi-condition guidance (5 passes batched into one forward per step), conditions encoded once.
RTF = sampling wall time / speech duration. ``--sample-steps-run k`` times only k steps (after a
warm-up step) and extrapolates linearly to ``--sample-steps``; the output says when it does.
"""

import argparse
import json
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from hicodit.diffusion import DiffusionConfig, DiffusionSamplerConfig, MaskedDiffusion  # noqa: E402
from hicodit.guidance import guidance_passes  # noqa: E402
from hicodit.model import HiCoDiT, HiCoDiTConfig  # noqa: E402


def parse_args(argv=None):
    p = argparse.ArgumentParser(description="HiCoDiT training throughput and sampling RTF")
    p.add_argument("--model", choices=("paper", "tiny"), default="paper")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--bf16", action="store_true", help="bf16 autocast (the trainer's default on GPU)")
    p.add_argument("--compile", action="store_true", help="torch.compile each transformer block")
    p.add_argument("--seconds", type=float, default=10.0, help="clip length (speech seconds)")
    p.add_argument("--train-batch", type=int, default=32)
    p.add_argument("--train-steps", type=int, default=10, help="timed training steps (after --warmup)")
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--sample-steps", type=int, default=64)
    p.add_argument("--sample-steps-run", type=int, default=None, help="time only this many steps and extrapolate")
    p.add_argument("--no-guidance", action="store_true", help="conditional pass only")
    p.add_argument("--skip-train", action="store_true")
    p.add_argument("--skip-sample", action="store_true")
    p.add_argument("--peak-tflops", type=float, default=989.0, help="device peak for MFU (H100 SXM bf16 dense)")
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--json", help="also write the results here")
    return p.parse_args(argv)


def matmul_flops_per_frame(cfg: HiCoDiTConfig, length: int) -> float:
    """Forward FLOPs per 50 Hz token frame: 2 x weights touched per frame + attention scores."""
    d = cfg.dim
    hidden = cfg.mlp_hidden or int(8 * d / 3)
    blocks = cfg.low_depth + cfg.high_depth
    per_block = 4 * d * d + 3 * d * hidden  # qkv + proj + SwiGLU (AdaLN is per clip, negligible)
    lip = (cfg.lip_dim * d + d * d * cfg.tokens_per_frame) / cfg.tokens_per_frame  # per video frame / r
    weights = blocks * per_block + 2 * d * d + (2 * d * d if cfg.high_merge == "concat" else 0) \
        + d * cfg.num_levels * cfg.codebook_size + lip
    attention = blocks * 2 * 2 * length * d  # QK^T and AV
    return 2 * weights + attention


def random_batch(cfg: HiCoDiTConfig, batch: int, frames: int, device) -> dict:
    length = frames * cfg.tokens_per_frame
    return {
        "tokens": torch.randint(0, cfg.codebook_size, (batch, cfg.num_levels, length), device=device),
        "token_mask": torch.ones(batch, length, dtype=torch.bool, device=device),
        "lip": torch.randn(batch, frames, cfg.lip_dim, device=device),
        "frame_mask": torch.ones(batch, frames, dtype=torch.bool, device=device),
        "face": torch.randn(batch, cfg.face_dim, device=device),
        "ge2e": torch.randn(batch, cfg.speaker_dim, device=device),
        "emotion": torch.randint(0, cfg.num_emotions, (batch, frames), device=device),
    }


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def bench_train(model: MaskedDiffusion, cfg: HiCoDiTConfig, args, device, frames: int) -> dict:
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, fused=device.type == "cuda")
    batch = random_batch(cfg, args.train_batch, frames, device)
    model.train()
    times = []
    for i in range(args.warmup + args.train_steps):
        sync(device)
        tick = time.perf_counter()
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=args.bf16):
            loss, _ = model(batch)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        sync(device)
        if i >= args.warmup:
            times.append(time.perf_counter() - tick)
    step = sum(times) / len(times)
    length = frames * cfg.tokens_per_frame
    frames_per_s = args.train_batch * length / step
    tflops = 3 * matmul_flops_per_frame(cfg, length) * frames_per_s / 1e12
    out = {"train_batch": args.train_batch, "train_sec_per_step": step, "train_frames_per_s": frames_per_s,
           "train_tokens_per_s": frames_per_s * cfg.num_levels, "train_model_tflops": tflops}
    if device.type == "cuda":
        out["train_mfu"] = tflops / args.peak_tflops
        out["train_peak_mem_gib"] = torch.cuda.max_memory_allocated(device) / 2**30
    return out


@torch.no_grad()
def bench_sample(model: MaskedDiffusion, cfg: HiCoDiTConfig, args, device, frames: int) -> dict:
    model.eval()
    batch = random_batch(cfg, 1, frames, device)
    sampler = DiffusionSamplerConfig(steps=args.sample_steps)
    if args.no_guidance:
        sampler = DiffusionSamplerConfig(steps=args.sample_steps, w_all=0, w_id=0, w_emo=0, w_lip=0)
    run_steps = args.sample_steps_run or args.sample_steps
    with torch.autocast(device.type, dtype=torch.bfloat16, enabled=args.bf16):
        cond = model.conditions(batch)[0]
        # warm-up (allocator, kernels, compile) with one step of the same shapes
        model.sample(cond, batch["token_mask"], DiffusionSamplerConfig(**{**vars(sampler), "steps": 1}))
        sync(device)
        tick = time.perf_counter()
        cond = model.conditions(batch)[0]
        model.sample(cond, batch["token_mask"], DiffusionSamplerConfig(**{**vars(sampler), "steps": run_steps}))
        sync(device)
        elapsed = time.perf_counter() - tick
    total = elapsed * args.sample_steps / run_steps
    return {"sample_steps": args.sample_steps, "sample_steps_timed": run_steps,
            "sample_extrapolated": run_steps != args.sample_steps, "guidance_passes": len(guidance_passes(sampler)),
            "sample_sec": total, "sample_rtf": total / args.seconds}


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    cfg = HiCoDiTConfig.paper() if args.model == "paper" else HiCoDiTConfig.tiny()
    torch.manual_seed(0)
    model = MaskedDiffusion(HiCoDiT(cfg), DiffusionConfig()).to(device)
    if args.compile:
        for block in model.repeated_blocks():
            block.compile()
    frames = int(round(args.seconds * 25))
    results = {"model": args.model, "params_m": model.net.num_parameters() / 1e6, "device": str(device),
               "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
               "threads": torch.get_num_threads(), "bf16": args.bf16, "compile": args.compile,
               "seconds": args.seconds, "torch": torch.__version__}
    if not args.skip_train:
        results.update(bench_train(model, cfg, args, device, frames))
    if not args.skip_sample:
        results.update(bench_sample(model, cfg, args, device, frames))
    for k, v in results.items():
        print(f"{k:>22}: {v:.4g}" if isinstance(v, float) else f"{k:>22}: {v}")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
