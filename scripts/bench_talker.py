"""Benchmark Talker-T2AV: training step time and generation real-time factor, random weights.

    python scripts/bench_talker.py --device cuda                      # paper size (Qwen3-0.6B shapes)
    python scripts/bench_talker.py --device cpu --size reduced         # a narrow model for CPUs
    python scripts/bench_talker.py --device cuda --skip-train --no-cuda-graph   # generation without the CUDA graphs

training  batch of 8 clips (half audio-video, half TTS-only) of --seconds each, AdamW step, bf16
          autocast on CUDA; the time of one optimizer step (forward + backward + step).
generate  T2AV with 10 Euler steps and CFG 2 per patch and head, --gen-seconds of output per
          sample, stop head disabled so every run makes the same number of patches; RTF = wall time /
          seconds of audio, at batch 1 and at --gen-batch (per sample and for the whole batch).
Features are precomputed in our pipeline, so no codec runs here (the released recipe encodes
Whisper-large + WavLM features every step on top of this).
"""

import argparse
import json
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from engine.optim import build_adamw  # noqa: E402
from talker_t2av.cfm import (  # noqa: E402
    CFMSamplerConfig,  # noqa: E402
    GenerationConfig,
    TalkerConditions,
    TalkerObjective,  # noqa: E402
    generate,
    uses_cuda_graph,
)
from talker_t2av.checkpoints import paper_config, set_inference_dtype  # noqa: E402
from talker_t2av.data import TalkerCollator  # noqa: E402
from talker_t2av.model import TalkerT2AV  # noqa: E402

# narrower and shallower than Qwen3-0.6B, same vocabulary (151936, as the tokenizer needs)
REDUCED = {"hidden_size": 256, "intermediate_size": 768, "num_hidden_layers": 4, "num_attention_heads": 4,
           "num_key_value_heads": 2, "head_dim": 64}


def build_config(args):
    cfg = paper_config(attention=args.attention, load_backbone_weights=False, freeze_text_embeddings=True)
    if args.size == "reduced":
        cfg.backbone = {**cfg.backbone, **REDUCED}
        cfg.patch_encoder_heads = cfg.head_heads = 4
        cfg.patch_encoder_layers, cfg.head_layers = args.reduced_pe_layers, args.reduced_head_layers
    if args.vocab:
        cfg.backbone = {**cfg.backbone, "vocab_size": args.vocab, "bos_token_id": None, "eos_token_id": None}
    return cfg


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def make_batch(batch: int, frames: int, text_tokens: int, vocab: int, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    items = []
    for i in range(batch):
        n = frames - 4 * (i % 3)  # slightly different lengths, as a bucketed batch has
        items.append({"text_ids": torch.randint(0, vocab, (text_tokens - i % 4,), generator=g),
                      "speech": torch.randn(n, 32, generator=g),
                      "motion": torch.randn(n // 4 * 4, 40, generator=g) if i % 2 == 0 else None,
                      "speaker": torch.randn(256, generator=g), "ends": True, "id": str(i)})
    return TalkerCollator(4)(items)


def bench_training(args, cfg, device) -> dict:
    torch.manual_seed(0)
    module = TalkerObjective(TalkerT2AV(cfg)).to(device).train()
    if args.activation_checkpointing:
        from engine.parallel import enable_activation_checkpointing

        for block in module.repeated_blocks():
            enable_activation_checkpointing(block)
    if args.compile_train:  # as the trainer's trainer.compile=true: each repeated block through torch.compile
        for block in module.repeated_blocks():
            block.compile()
    opt = build_adamw(module, lr=1e-4, weight_decay=0.01)
    batch = make_batch(args.batch, int(args.seconds * 25), args.text_tokens, cfg.backbone["vocab_size"])
    batch = {k: v.to(device) if torch.is_tensor(v) else v for k, v in batch.items()}
    amp = torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda")
    times = []
    for i in range(args.warmup + args.iters):
        sync(device)
        start = time.perf_counter()
        with amp:
            loss, _ = module(batch)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(module.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        sync(device)
        if i >= args.warmup:
            times.append(time.perf_counter() - start)
    result = {"train_step_ms": 1000 * sorted(times)[len(times) // 2], "batch": args.batch, "seconds": args.seconds,
              "compile": args.compile_train, "activation_checkpointing": args.activation_checkpointing}
    if device.type == "cuda":
        result["peak_mem_gib"] = torch.cuda.max_memory_allocated() / 2**30
    del module, opt
    return result


def bench_generation(args, cfg, device, batch: int) -> dict:
    torch.manual_seed(0)
    model = TalkerT2AV(cfg).to(device).eval()
    dtype = torch.bfloat16 if device.type == "cuda" and args.dtype != "fp32" else torch.float32
    set_inference_dtype(model, dtype, torch.bfloat16 if args.bf16_heads and device.type == "cuda" else torch.float32)
    patches = int(args.gen_seconds * 25) // 4
    ids = torch.randint(0, cfg.backbone["vocab_size"], (batch, args.text_tokens), device=device)
    cond = TalkerConditions(ids, torch.ones_like(ids, dtype=torch.bool), torch.randn(batch, 256, device=device),
                      torch.randn(batch, 40, device=device))
    sampler = CFMSamplerConfig(steps=10, guidance=2.0, temperature=0.7)
    gen = GenerationConfig(mode="t2av", speech=sampler, motion=sampler, max_patches=patches,
                           min_patches=10**9)  # no stop: a fixed length
    times = []
    for i in range(args.gen_warmup + args.gen_iters):
        sync(device)
        start = time.perf_counter()
        out = generate(model, cond, gen, compile=args.compile, cuda_graph=args.cuda_graph,
                       paired_heads=args.paired_heads)
        sync(device)
        if i >= args.gen_warmup:
            times.append(time.perf_counter() - start)
    wall = sorted(times)[len(times) // 2]
    audio = len(out.speech[0]) / 25
    del model
    return {"batch": batch, "compile": args.compile, "paired_heads": args.paired_heads,
            "cuda_graph": uses_cuda_graph(args.cuda_graph, device, args.compile), "audio_seconds_per_sample": audio,
            "wall_s": wall, "rtf_per_sample": wall / audio,
            "rtf_throughput": wall / (audio * batch)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--size", choices=("paper", "reduced"), default="paper")
    ap.add_argument("--reduced-pe-layers", type=int, default=2)
    ap.add_argument("--reduced-head-layers", type=int, default=2)
    ap.add_argument("--vocab", type=int, default=None, help="override the vocabulary size (default Qwen3's 151936)")
    ap.add_argument("--attention", default="auto")
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--seconds", type=float, default=10.0, help="clip length in the training batch")
    ap.add_argument("--text-tokens", type=int, default=40)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--iters", type=int, default=5)
    ap.add_argument("--activation-checkpointing", action="store_true")
    ap.add_argument("--compile-train", action="store_true", help="compile each repeated block, as trainer.compile")
    ap.add_argument("--gen-seconds", type=float, default=10.0)
    ap.add_argument("--gen-batch", type=int, default=8)
    ap.add_argument("--gen-warmup", type=int, default=1)
    ap.add_argument("--gen-iters", type=int, default=3)
    ap.add_argument("--dtype", choices=("auto", "fp32"), default="auto", help="auto: bf16 backbone on CUDA")
    ap.add_argument("--bf16-heads", action="store_true", help="also run the CFM heads in bf16 (CUDA)")
    ap.add_argument("--compile", action="store_true", help="torch.compile the per-patch head sampling")
    ap.add_argument("--cuda-graph", action=argparse.BooleanOptionalAction, default=None,
                    help="decode over the fixed-size cache, each patch's steps captured as CUDA graphs and kept "
                         "between calls (default, as the library's: on CUDA only)")
    ap.add_argument("--paired-heads", action=argparse.BooleanOptionalAction, default=True,
                    help="the two heads' decoders as one batched pass (default, as the library's)")
    ap.add_argument("--skip-train", action="store_true")
    ap.add_argument("--skip-generate", action="store_true")
    ap.add_argument("--json", help="also write the results to this file")
    args = ap.parse_args()
    device = torch.device(args.device)
    cfg = build_config(args)
    results = {"device": str(device), "size": args.size, "torch": torch.__version__,
               "gpu": torch.cuda.get_device_name(device) if device.type == "cuda" else None}
    if not args.skip_train:
        results["train"] = bench_training(args, cfg, device)
        print(json.dumps({"train": results["train"]}), flush=True)
    if not args.skip_generate:
        results["generate"] = [bench_generation(args, cfg, device, b) for b in sorted({1, args.gen_batch})]
        for r in results["generate"]:
            print(json.dumps({"generate": r}), flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
