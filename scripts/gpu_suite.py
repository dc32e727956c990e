"""GPU suite (issue 45): the card's ceilings, correctness against the fp32 CPU reference, training through
the real trainer (torchrun), and sampling speed, on one CUDA GPU. Writes ``gpu_suite.json`` and
``gpu_suite.md`` to ``--out-dir`` and prints a summary table last (docs/gpu.md, docs/performance.md).

    python scripts/gpu_suite.py --out-dir out/gpu            # one CUDA GPU, paper sizes (~8 min)
    python scripts/gpu_suite.py --out-dir out/gpu --extended # + the parts measured once (~5 min more)
    python scripts/gpu_suite.py --out-dir /tmp/s --smoke     # the same code on CPU, tiny sizes (~40 s)

Each part is guarded: a failure is recorded (status ``fail`` or ``error`` with the exception) and the
rest still runs. Parts past ``--budget-s`` are recorded as ``skipped`` (not measured).

Correctness: error = ||out - ref|| / ||ref||, ref = fp32 on the CPU with the same weights and inputs;
randomness inside the losses (mask draws, times, CFM noise, condition dropout) is drawn on the CPU
from one seeded generator on both sides, so both see the same draws. Any NaN fails a check.

FLOPs for MFU: HiCoDiT uses scripts/bench_hicodit.py's analytic count (matmul weights touched per
token frame + attention scores, x3 for forward + backward); Talker uses 6 x matmul parameters (the text
embedding table is read, not multiplied) x the synthetic items' real backbone positions (it ignores attention
and the heads' K-fold rows). The floors are those FLOPs at the matmul rate hw.ceilings measured.
"""

import argparse
import contextlib
import datetime
import json
import math
import os
import subprocess
import sys
import threading
import time
import traceback
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

H100_BF16_PEAK_TFLOPS = 989.0  # H100 SXM, dense bf16 (no sparsity)
T0 = time.perf_counter()


def say(msg: str) -> None:
    print(f"[gpu_suite {time.perf_counter() - T0:6.1f}s] {msg}", flush=True)


# ------------------------------------------------------------------------------------------ helpers
def rel_err(out: torch.Tensor, ref: torch.Tensor) -> float:
    out, ref = out.detach().double().cpu(), ref.detach().double().cpu()
    if not torch.isfinite(out).all():
        return float("nan")
    return float((out - ref).norm() / ref.norm().clamp(min=1e-30))


def sync(device) -> None:
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()


@contextlib.contextmanager
def cpu_rng(seed: int):
    """Every torch.rand/randn/randint inside draws on the CPU from one seeded generator, then moves to the
    requested device: the same draws on CPU and GPU."""
    g = torch.Generator().manual_seed(seed)
    names = ("rand", "randn", "randint")
    orig = {n: getattr(torch, n) for n in names}

    def make(name):
        def fn(*args, generator=None, device=None, **kw):
            out = orig[name](*args, generator=g, **kw)
            return out.to(device) if device is not None else out
        return fn

    try:
        for n in names:
            setattr(torch, n, make(n))
        yield
    finally:
        for n, f in orig.items():
            setattr(torch, n, f)


@contextlib.contextmanager
def tf32(enabled: bool):
    old = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = enabled
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = old


def to_dev(batch: dict, device) -> dict:
    return {k: v.to(device) if torch.is_tensor(v) else v for k, v in batch.items()}


def peak_mem_gib(device) -> float | None:
    return torch.cuda.max_memory_allocated() / 2**30 if torch.device(device).type == "cuda" else None


def reset_peak(device) -> None:
    if torch.device(device).type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()


# ------------------------------------------------------------------------------------------ models
def hicodit_parts(smoke: bool):
    from hicodit.diffusion import DiffusionConfig, MaskedDiffusion
    from hicodit.model import HiCoDiT, HiCoDiTConfig

    cfg = HiCoDiTConfig.tiny() if smoke else HiCoDiTConfig.paper()
    torch.manual_seed(0)
    model = MaskedDiffusion(HiCoDiT(cfg), DiffusionConfig(id_loss_weight=100.0))
    with torch.no_grad():  # DiT-style zero-initialised outputs give all-zero logits: a check on them is empty
        g = torch.Generator().manual_seed(1)
        for p in model.parameters():
            p.add_(0.02 * torch.randn(p.shape, generator=g))
    return cfg, model


def hicodit_batch(cfg, batch: int, frames: int, seed: int = 0) -> dict:
    g = torch.Generator().manual_seed(seed)
    length = frames * cfg.tokens_per_frame
    return {
        "tokens": torch.randint(0, cfg.codebook_size, (batch, cfg.num_levels, length), generator=g),
        "token_mask": torch.ones(batch, length, dtype=torch.bool),
        "lip": torch.randn(batch, frames, cfg.lip_dim, generator=g),
        "frame_mask": torch.ones(batch, frames, dtype=torch.bool),
        "face": torch.randn(batch, cfg.face_dim, generator=g),
        "ge2e": torch.randn(batch, cfg.speaker_dim, generator=g),
        "emotion": torch.randint(0, cfg.num_emotions, (batch, frames), generator=g),
    }


def talker_config(smoke: bool):
    if smoke:
        from talker_t2av.checkpoints import named_config
        from talker_t2av.model import TalkerConfig

        return named_config(TalkerConfig, "model", "talker_t2av_tiny")
    from talker_t2av.checkpoints import paper_config

    return paper_config(attention="sdpa", load_backbone_weights=False)


def talker_batch(cfg, batch: int, frames: int, text_tokens: int, seed: int = 0) -> dict:
    from bench_talker import make_batch

    return make_batch(batch, frames, text_tokens, cfg.backbone["vocab_size"], seed)


# ------------------------------------------------------------------------------------------ part a
def hicodit_outputs(model, batch: dict, device, amp: bool):
    """(logits, loss) in train mode with the CPU-drawn randomness (seed 1 for both)."""
    model = model.to(device).train()
    batch = to_dev(batch, device)
    with torch.no_grad(), torch.autocast(torch.device(device).type, dtype=torch.bfloat16, enabled=amp):
        with cpu_rng(1):
            loss, _ = model(batch)
        b, q, length = batch["tokens"].shape
        with cpu_rng(2):
            t = torch.rand(b, device=device)
            masked = torch.rand(b, q, length, device=device) < 0.5
        noisy = torch.where(masked, model.mask_id, batch["tokens"])
        model.eval()
        cond = model.conditions(batch)[0]
        logits = model.net(noisy, t, cond, batch["token_mask"])
    return logits.float().cpu(), loss.float().cpu()


def check_hicodit(args, device) -> dict:
    cfg, model = hicodit_parts(args.smoke)
    frames = 25 if args.smoke else 100  # 4 s clips at paper size
    batch = hicodit_batch(cfg, 2, frames)
    ref_logits, ref_loss = hicodit_outputs(model, batch, "cpu", amp=False)
    res = {"params_m": sum(p.numel() for p in model.parameters()) / 1e6, "frames": frames, "batch": 2}
    with tf32(False):
        lg, ls = hicodit_outputs(model, batch, device, amp=False)
    res["fp32_logits_err"], res["fp32_loss_err"] = rel_err(lg, ref_logits), rel_err(ls, ref_loss)
    lg, ls = hicodit_outputs(model, batch, device, amp=True)
    res["bf16_logits_err"], res["bf16_loss_err"] = rel_err(lg, ref_logits), rel_err(ls, ref_loss)
    model.cpu()
    return verdict(res, {"fp32_logits_err": 1e-4, "fp32_loss_err": 1e-4, "bf16_logits_err": 1e-2,
                         "bf16_loss_err": 1e-2})


def talker_loss_grad(module, batch: dict, device, amp: bool):
    module = module.to(device).train()
    module.zero_grad(set_to_none=True)
    with torch.autocast(torch.device(device).type, dtype=torch.bfloat16, enabled=amp), cpu_rng(3):
        loss, _ = module(to_dev(batch, device))
    loss.backward()
    grads = torch.cat([p.grad.detach().float().flatten().cpu() for p in module.parameters() if p.grad is not None])
    module.zero_grad(set_to_none=True)
    return loss.detach().float().cpu(), grads


def check_talker(args, device) -> dict:
    from talker_t2av.cfm import TalkerObjective
    from talker_t2av.model import TalkerT2AV

    cfg = talker_config(args.smoke)
    torch.manual_seed(0)
    module = TalkerObjective(TalkerT2AV(cfg))
    batch = talker_batch(cfg, 2, 40 if args.smoke else 100, 12 if args.smoke else 30)
    ref_loss, ref_grad = talker_loss_grad(module, batch, "cpu", amp=False)
    res = {"params_m": sum(p.numel() for p in module.parameters()) / 1e6, "batch": 2,
           "ref_grad_norm": float(ref_grad.norm())}
    with tf32(False):
        loss, grad = talker_loss_grad(module, batch, device, amp=False)
    res["fp32_loss_err"], res["fp32_grad_err"] = rel_err(loss, ref_loss), rel_err(grad, ref_grad)
    res["fp32_grad_norm_err"] = rel_err(grad.norm(), ref_grad.norm())
    loss, grad = talker_loss_grad(module, batch, device, amp=True)
    res["bf16_loss_err"], res["bf16_grad_err"] = rel_err(loss, ref_loss), rel_err(grad, ref_grad)
    res["bf16_grad_norm_err"] = rel_err(grad.norm(), ref_grad.norm())
    module.cpu()
    # the whole-gradient error is reported; the goal checks loss and gradient norm (the brief's first cut)
    return verdict(res, {"fp32_loss_err": 1e-4, "fp32_grad_norm_err": 1e-4, "bf16_loss_err": 1e-2,
                         "bf16_grad_norm_err": 1e-2})


def check_attention(args, device) -> dict:
    """HiCoDiT logits (fp32, TF32 off) under each SDPA kernel against the math kernel, on the device."""
    from torch.nn.attention import SDPBackend, sdpa_kernel

    cfg, model = hicodit_parts(args.smoke)
    batch = hicodit_batch(cfg, 2, 25 if args.smoke else 100)
    kernels = {"math": SDPBackend.MATH, "sdpa_default": None}
    if torch.device(device).type == "cuda":
        kernels.update({"efficient": SDPBackend.EFFICIENT_ATTENTION, "cudnn": SDPBackend.CUDNN_ATTENTION})
    outs, res = {}, {}
    with tf32(False):
        for name, kernel in kernels.items():
            ctx = sdpa_kernel([kernel]) if kernel is not None else contextlib.nullcontext()
            try:
                with ctx:
                    outs[name] = hicodit_outputs(model, batch, device, amp=False)[0]
            except Exception as e:  # noqa: BLE001 - a kernel that does not take these inputs is recorded
                res[f"{name}_error"] = f"{type(e).__name__}: {str(e).splitlines()[0][:200]}"
    limits = {}
    for name, out in outs.items():
        if name != "math" and "math" in outs:
            res[f"{name}_vs_math_err"] = rel_err(out, outs["math"])
            limits[f"{name}_vs_math_err"] = 1e-4
    res["flash_attn_importable"] = __import__("importlib").util.find_spec("flash_attn") is not None
    model.cpu()
    return verdict(res, limits)


def check_checkpoint(args, device, tmp: Path) -> dict:
    """state_dict saved with safetensors from the device, loaded into a fresh CPU model: same logits."""
    from safetensors.torch import load_file, save_file

    cfg, model = hicodit_parts(args.smoke)
    batch = hicodit_batch(cfg, 1, 25 if args.smoke else 100)
    model = model.to(device)
    with torch.no_grad():  # perturb on the device so the file must carry device-made values
        for p in model.parameters():
            p.add_(0.01 * torch.randn_like(p))
    with tf32(False):
        dev_logits = hicodit_outputs(model, batch, device, amp=False)[0]
    path = tmp / "hicodit_ckpt.safetensors"
    save_file({k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}, str(path))
    _, fresh = hicodit_parts(args.smoke)
    missing, unexpected = fresh.load_state_dict(load_file(str(path)), strict=True), None
    cpu_logits = hicodit_outputs(fresh, batch, "cpu", amp=False)[0]
    res = {"file_mb": path.stat().st_size / 2**20, "cpu_vs_device_err": rel_err(cpu_logits, dev_logits)}
    path.unlink()
    model.cpu()
    del missing, unexpected
    return verdict(res, {"cpu_vs_device_err": 1e-4})


def verdict(res: dict, limits: dict) -> dict:
    bad = [k for k, lim in limits.items() if not (isinstance(res.get(k), float) and res[k] <= lim)]
    res["limits"] = limits
    res["checks_total"] = len(limits)
    res["checks_passed"] = len(limits) - len(bad)
    res["status"] = "ok" if not bad else "fail"
    if bad:
        res["failed"] = bad
    return res


def hardware_ceilings(args, device) -> dict:
    """The two ceilings every figure is read against, measured on this card: a large bf16 matmul's rate
    (random operands; zeros run faster) and a device-to-device copy's bandwidth (bytes read + written)."""
    n = 256 if args.smoke else 8192  # a CPU without bf16 units multiplies 1024² bf16 at ~1 GFLOP/s
    a, b = (torch.randn(n, n, device=device, dtype=torch.bfloat16) for _ in range(2))
    src = torch.randn(2**22 if args.smoke else 2**30, device=device)  # 4 GiB of fp32 on the GPU
    dst = torch.empty_like(src)
    res = {"matmul_n": n, "copy_bytes": 2 * src.numel() * 4}
    res["matmul_tflops"] = 2 * n**3 / median_time(lambda: a @ b, device, 10) / 1e12
    res["copy_tb_per_s"] = res["copy_bytes"] / median_time(lambda: dst.copy_(src), device, 10) / 1e12
    res["status"] = "ok"
    args.matmul_tflops = res["matmul_tflops"]  # the floors below are read against this rate
    return res


def ceiling_tflops(args) -> float:
    """The measured bf16 matmul rate where hw.ceilings ran, else the datasheet peak."""
    return getattr(args, "matmul_tflops", None) or args.peak_tflops


def median_time(fn, device, reps: int) -> float:
    """Median seconds of ``fn`` after two warm-ups (device events on CUDA)."""
    for _ in range(2):
        fn()
    times = []
    for _ in range(reps):
        if torch.device(device).type == "cuda":
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            fn()
            end.record()
            end.synchronize()
            times.append(start.elapsed_time(end) / 1e3)
        else:
            tick = time.perf_counter()
            fn()
            times.append(time.perf_counter() - tick)
    return sorted(times)[len(times) // 2]


# ------------------------------------------------------------------------------------------ part b
class GpuMemPoller:
    """nvidia-smi's used memory, polled while a subprocess runs (the trainer does not log its peak)."""

    def __init__(self):
        self.peak_mib, self._stop = None, threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while not self._stop.is_set():
            try:
                out = subprocess.run(["nvidia-smi", "--query-gpu=memory.used", "--format=csv,noheader,nounits"],
                                     capture_output=True, text=True, timeout=5).stdout
                used = max(float(x) for x in out.split())
                self.peak_mib = used if self.peak_mib is None else max(self.peak_mib, used)
            except Exception:  # noqa: BLE001 - no nvidia-smi (CPU smoke): no figure
                return
            self._stop.wait(0.5)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join(timeout=6)


def run_within_budget(args, cmd: list[str]) -> tuple[subprocess.CompletedProcess, float]:
    """Run ``cmd`` from the repository with what is left of the suite's budget (at least 30 s); a run cut off
    keeps the output it wrote (returncode -9). Returns the process and the time limit it had."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
           "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "4")}
    limit = max(30, args.budget_s - (time.perf_counter() - T0))
    try:
        return subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=limit), limit
    except subprocess.TimeoutExpired as e:
        def text(stream):
            return stream.decode(errors="replace") if isinstance(stream, bytes) else (stream or "")

        return subprocess.CompletedProcess(cmd, -9, text(e.stdout), text(e.stderr)), limit


# issue 45 part 4 (what a user pays at inference; our side of the training comparison): part -> (script, its
# arguments on the GPU, with --smoke on CPU)
BENCH_SCRIPTS = {
    "infer.avhubert": ("bench_avhubert.py", "--device cuda --precision bf16 --batch 8 --frames 250",
                       "--model tiny --batch 1 --frames 25 --repeats 1"),
    "infer.maskgct_codec": ("bench_maskgct_codec.py", "--device cuda --dtype bf16 --batch 1 --seconds 10",
                            "--size tiny --device cpu --seconds 1 --repeats 1"),
    "infer.whisperx_vae": ("bench_whisperx_vae.py", "--device cuda --amp bf16 --batch 1 --seconds 10",
                           "--size tiny --seconds 1 --repeats 1"),
    "infer.lia_x": ("bench_lia_x.py", "--device cuda --dtype bf16 --frames 64 --chunk 16",
                    "--tiny --frames 2 --chunk 2"),
    # rendering is 6 TFLOP a frame of convolutions, at 26 % of the matmul rate in NCHW (run G): the layout lever
    "infer.lia_x_channels_last": ("bench_lia_x.py", "--device cuda --dtype bf16 --frames 64 --chunk 16 --channels-last",
                                  "--tiny --frames 2 --chunk 2 --channels-last"),
    # our side of part 4's training comparison, batch 8 x 10 s (the released code's 587-639 ms on an H200 was
    # measured beside it in the second session, docs/performance.md): the goal is >= 3x
    "bench.talker_train_b8": ("bench_talker.py", "--device cuda --batch 8 --skip-generate",
                              "--device cpu --size reduced --batch 2 --seconds 1 --iters 1 --warmup 0 --skip-generate "
                              "--vocab 1000"),
    # the same step as trainer.compile=true runs it (1.64x faster than eager at batch 32, run G): what a user
    # of this code gets against the released code's eager step
    "bench.talker_train_b8_compile": ("bench_talker.py", "--device cuda --batch 8 --skip-generate --compile-train "
                                      "--warmup 3",
                                      "--device cpu --size reduced --batch 2 --seconds 1 --iters 1 --warmup 0 "
                                      "--skip-generate --vocab 1000"),
}


def bench_script(args, part: str) -> dict:
    """One of scripts/bench_*.py in its own process (random weights at the released sizes): its figures."""
    script, gpu_args, smoke_args = BENCH_SCRIPTS[part]
    cmd = [sys.executable, str(ROOT / "scripts" / script), *(smoke_args if args.smoke else gpu_args).split()]
    proc, limit = run_within_budget(args, cmd)
    res = {"command": f"python scripts/{script} " + " ".join(cmd[2:])}
    if proc.returncode != 0:
        tail = [ln for ln in proc.stderr.splitlines() if ln.strip() and "Warning" not in ln][-8:]
        if proc.returncode == -9:
            tail.append(f"timed out after {limit:.0f} s (the suite's budget)")
        return {**res, "status": "error", "returncode": proc.returncode, "error": "\n".join(tail)}
    figures = parse_bench_output(proc.stdout)
    return {**res, **figures, "status": "ok" if figures else "fail"}


def parse_bench_output(text: str) -> dict:
    """The figures the bench scripts print as JSON lines (each prints one, after its table for people)."""
    figures = {}
    for line in text.splitlines():
        if line.strip().startswith("{"):
            for key, value in json.loads(line).items():  # bench_talker nests its figures: {"train": {...}}
                figures.update(value if isinstance(value, dict) else {key: value})
    return figures


def train_run(args, device, out: Path, family: str, parallel: str, compile_: bool, steps: int, batch: int,
              frames: int, checkpointing: bool = False, name_suffix: str = "") -> dict:
    name = f"{family}_{parallel}{'_compile' if compile_ else ''}{'_ckpt' if checkpointing else ''}{name_suffix}"
    run_dir = Path(args.work_dir or out) / "runs" / name  # checkpoints land here (GBs at paper size)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=1", str(ROOT / "train.py")]
    if family == "hicodit":
        model = "hicodit_tiny" if args.smoke else "hicodit_paper"
        cmd += ["experiment=hicodit_tiny", f"model={model}", f"data.synthetic_min_frames={frames}",
                f"data.synthetic_max_frames={frames}", f"data.synthetic_clips={max(batch, 8)}",
                "task.sampler.steps=4"]
    else:
        model = "talker_t2av_tiny" if args.smoke else "talker_t2av_paper"
        n_clips = max(batch, 4)
        cmd += ["experiment=talker_tiny", f"model={model}", "model.tokenizer=char",  # synthetic text: no Qwen3 files
                f"data.synthetic_clips={n_clips}", f"data.synthetic_frames={frames}", "task.val_max_seconds=1.0",
                "trainer.lr=1e-4"]
    precision = "fp32" if args.smoke else "bf16"
    cmd += [f"trainer.parallel={parallel}", f"trainer.precision={precision}",
            f"trainer.compile={str(compile_).lower()}",
            f"trainer.activation_checkpointing={str(checkpointing).lower()}",
            f"trainer.max_steps={steps}", f"trainer.batch_size={batch}", "trainer.max_frames=null",
            "trainer.log_every=1", "trainer.warmup_steps=2", f"trainer.out_dir={run_dir}",
            f"trainer.save_every={10 * steps}", "trainer.keep_last=1", "trainer.progress=false",
            "trainer.num_workers=0", "trainer.resume=none", "trainer.val_batch_size=1"]
    if args.smoke:
        cmd.append("trainer.device=cpu")
    say(f"train {name}: {' '.join(cmd[3:])}")
    tick = time.perf_counter()
    with GpuMemPoller() as mem:
        proc, limit = run_within_budget(args, cmd)
    wall = time.perf_counter() - tick
    res = {"command": "torchrun --nproc_per_node=1 train.py " + " ".join(cmd[5:]), "wall_s": wall, "batch": batch,
           "frames": frames, "steps": steps, "parallel": parallel, "compile": compile_, "precision": precision,
           "activation_checkpointing": checkpointing}
    if mem.peak_mib is not None:
        res["peak_mem_gib_nvidia_smi"] = mem.peak_mib / 1024
    (out / f"train_{name}.log").write_text(proc.stdout[-20000:] + "\n--- stderr ---\n" + proc.stderr[-40000:])
    metrics = run_dir / "metrics.jsonl"
    logged = [json.loads(ln) for ln in metrics.read_text().splitlines() if ln.strip()] if metrics.exists() else []
    if proc.returncode != 0:
        tail = [ln for ln in proc.stderr.splitlines() if ln.strip() and "Warning" not in ln][-8:]
        if proc.returncode == -9:
            tail.append(f"timed out after {limit:.0f} s (the suite's budget)")
        res.update(status="error", returncode=proc.returncode, error="\n".join(tail),
                   logged_steps=[{k: r[k] for k in ("step", "train/sec_per_step", "train/loss") if k in r}
                                 for r in logged])
        return res
    rows = logged
    times = [r["train/sec_per_step"] for r in rows if "train/sec_per_step" in r]
    warm = times[len(times) // 2:] or times  # the second half: past compile and allocator warm-up
    step_s = sorted(warm)[len(warm) // 2]
    res.update(step_s_median_second_half=step_s, first_step_s=times[0] if times else None,
               final_loss=next((r["train/loss"] for r in reversed(rows) if "train/loss" in r), None))
    if family == "hicodit":
        from bench_hicodit import matmul_flops_per_frame

        from hicodit.model import HiCoDiTConfig

        cfg = HiCoDiTConfig.tiny() if args.smoke else HiCoDiTConfig.paper()
        length = frames * cfg.tokens_per_frame
        token_frames = batch * length
        flops = 3 * matmul_flops_per_frame(cfg, length) * token_frames
        res.update(token_frames_per_s=token_frames / step_s, codec_tokens_per_s=token_frames * cfg.num_levels / step_s,
                   speech_s_per_s=batch * frames / 25 / step_s, flops_per_step=flops,
                   flops_method="analytic: 3 x (2 x matmul weights per token frame + attention scores)")
    else:
        flops, tokens = talker_step_flops(talker_config(args.smoke), n_clips, frames, batch)
        positions = tokens["backbone"]
        res.update(sequence_positions=positions, sequence_positions_per_s=positions / step_s, flops_per_step=flops,
                   tokens_per_step=tokens,
                   flops_method="6 x matmul weights x the tokens through them, per module: the backbone's positions, "
                                "the patch encoders' P + 1 tokens a slot, the heads' 2 + (p + 1) P tokens a row, K "
                                "rows a target (attention scores left out)")
    res["model_tflops_per_s"] = flops / step_s / 1e12
    res["floor_s"] = flops / (ceiling_tflops(args) * 1e12)  # the step at the measured matmul rate
    res["step_over_floor"] = step_s / res["floor_s"]
    if not args.smoke:
        res["mfu"] = res["model_tflops_per_s"] / args.peak_tflops
    res["status"] = "ok" if times and all(math.isfinite(t) for t in times) else "fail"
    return res


def talker_step_flops(cfg, n_clips: int, frames: int, batch: int) -> tuple[float, dict]:
    """Matmul FLOPs of one Talker training step on the suite's synthetic items (their mean, x ``batch``): 6 x each
    weight x the tokens it sees (attention scores left out); and the tokens per module. Per slot (patch) the
    backbone sees one position; the speech (and, for audio-video items, the motion) patch encoder a CLS and P
    frames; each head, for each target patch, K = cfg.cfm.repeats rows of 2 + (p + 1) P tokens (mu + t, the
    global condition, p context patches, the noisy patch)."""
    from talker_t2av.data import TalkerDataConfig
    from talker_t2av.model import TalkerT2AV
    from talker_t2av.synthetic import SyntheticTalkerDataset

    with torch.device("meta"):
        net = TalkerT2AV(cfg)

    def weights(*modules) -> int:
        return sum(p.numel() for m in modules for p in m.parameters())

    P, p, K = cfg.patch_size, cfg.context_patches, cfg.cfm.repeats
    row = 2 + (p + 1) * P

    def head(cfm) -> int:  # matmul weight-uses per row
        e = cfm.estimator
        return (weights(e.decoder) * row + weights(e.in_proj, e.out_proj) * P + weights(e.cond_proj) * p * P
                + weights(e.global_cond_proj, e.time_mlp, e.delta_time_mlp))

    def encoder(enc, projector) -> int:  # per slot
        return weights(enc.blocks) * (P + 1) + weights(enc.input_proj, projector) * P

    # the text embedding table is read, not multiplied (the tied LM head is never run)
    backbone = weights(net.llm, net.head_stop) - net.llm.get_input_embeddings().weight.numel()
    data = TalkerDataConfig(synthetic_clips=n_clips, synthetic_frames=frames, speech_dim=cfg.speech_dim,
                            motion_dim=cfg.motion_dim, speaker_dim=cfg.speaker_dim)
    items = SyntheticTalkerDataset(data, "char", P, n_clips)
    tokens = {"backbone": 0.0, "speech_encoder": 0.0, "motion_encoder": 0.0, "speech_head": 0.0, "motion_head": 0.0}
    uses = 0.0
    for i in range(len(items)):
        item = items[i]
        slots = -(-len(item["speech"]) // P)
        av = item["motion"] is not None
        positions = 1 + len(item["text_ids"]) + slots  # task tag, prompt, one position per slot
        tokens["backbone"] += positions
        tokens["speech_encoder"] += slots * (P + 1)
        tokens["motion_encoder"] += slots * (P + 1) * av
        tokens["speech_head"] += K * slots * row
        tokens["motion_head"] += K * slots * row * av
        uses += (backbone * positions + encoder(net.speech_patch_encoder, net.projector_speech) * slots
                 + encoder(net.motion_patch_encoder, net.projector_motion) * slots * av
                 + head(net.speech_cfm) * K * slots + head(net.motion_cfm) * K * slots * av)
    scale = batch / len(items)
    return 6 * uses * scale, {k: v * scale for k, v in tokens.items()}


# ------------------------------------------------------------------------------------------ part c
@torch.no_grad()
def sample_hicodit(args, device, batch: int, steps: int, frames: int, graph: bool = False,
                   compile_blocks: bool = False) -> dict:
    from hicodit.diffusion import DiffusionSamplerConfig
    from hicodit.guidance import guidance_passes
    from hicodit.step_graphs import KEEP_MAX_BATCH, release

    cfg, model = hicodit_parts(args.smoke)
    model = model.to(device).eval()
    if compile_blocks:  # fuses each block's norms, modulation and activations; compiled in the warm-up below
        for block in model.repeated_blocks():
            block.compile()
    data = to_dev(hicodit_batch(cfg, batch, frames), device)
    sampler = DiffusionSamplerConfig(steps=steps, cuda_graph=graph)
    amp = torch.autocast(torch.device(device).type, dtype=torch.bfloat16, enabled=not args.smoke)
    g = torch.Generator(device=device).manual_seed(0)
    with amp:
        cond = model.conditions(data)[0]
        warm = DiffusionSamplerConfig(steps=2, cuda_graph=graph)
        model.sample(cond, data["token_mask"], warm, generator=g)  # warm-up
        capture = {}
        if graph and batch <= KEEP_MAX_BATCH:  # the call that captures, timed apart from the one after it
            release(model)  # the warm-up's graph: this call captures its own
            sync(device)
            tick = time.perf_counter()
            model.sample(cond, data["token_mask"], sampler, generator=g)
            sync(device)
            capture = {"capture_call_wall_s": time.perf_counter() - tick}
            capture["capture_call_rtf_per_clip"] = capture["capture_call_wall_s"] / (frames / 25)
        # at batches <= 2 the graph is kept from the call before (hicodit/step_graphs.py) and this call replays it
        # from its first step; above, each call captures its own at its first step, inside the timing
        sync(device)
        reset_peak(device)
        tick = time.perf_counter()
        cond = model.conditions(data)[0]
        tokens = model.sample(cond, data["token_mask"], sampler, generator=g)
        sync(device)
        wall = time.perf_counter() - tick
    seconds = frames / 25
    res = {"batch": batch, "steps": steps, "cuda_graph": graph, "compile": compile_blocks, "speech_s": seconds,
           **capture, "guidance_passes": len(guidance_passes(sampler)),
           "wall_s": wall, "rtf_per_clip": wall / seconds, "speech_s_per_s": batch * seconds / wall,
           "peak_mem_gib": peak_mem_gib(device), "bf16": not args.smoke,
           "status": "ok" if tokens.shape[0] == batch else "fail"}
    from bench_hicodit import matmul_flops_per_frame

    length = frames * cfg.tokens_per_frame  # every step runs every pass over every token frame (late: fewer)
    res["flops"] = steps * res["guidance_passes"] * batch * length * matmul_flops_per_frame(cfg, length)
    res["floor_s"] = res["flops"] / (ceiling_tflops(args) * 1e12)  # the hardware's limit for these FLOPs
    res["wall_over_floor"] = wall / res["floor_s"]
    model.cpu()
    return res


@torch.no_grad()
def check_hicodit_graph(args, device) -> dict:
    """The CUDA-graph sampler against the eager one, paper size, bf16, 10 s, 16 steps, same noise: one step's
    guided logits (gated) and the drawn tokens (agreement reported: one flipped draw changes what follows); and a
    second graphed call, which replays the graph the first kept, against the first (gated: the same tokens)."""
    from engine.cuda_graph import StaticGraph
    from hicodit.diffusion import DiffusionSamplerConfig
    from hicodit.guidance import PASS_DROPS, guidance_passes

    cfg, model = hicodit_parts(args.smoke)
    model = model.to(device).eval()
    frames = 25 if args.smoke else 250
    data = to_dev(hicodit_batch(cfg, 2, frames), device)
    steps = 4 if args.smoke else 16
    res = {"batch": 2, "frames": frames, "steps": steps}
    with torch.autocast(torch.device(device).type, dtype=torch.bfloat16, enabled=not args.smoke):
        cond = model.conditions(data)[0]
        x = torch.randint(0, cfg.codebook_size, data["tokens"].shape, device=device)
        x = torch.where(torch.rand(x.shape, device=device) < 0.5, model.mask_id, x)
        t = torch.full((2,), 0.6, device=device)
        samp = DiffusionSamplerConfig(steps=steps)
        names = guidance_passes(samp)
        kw = {"cond_n": cond.repeat(len(names)), "mask_n": None, "passes": names, "cfg": samp, "level_scale": None,
              "drop_n": torch.tensor([PASS_DROPS[p] for p in names], device=device).repeat_interleave(2, 0)}
        eager = model.guided_logits(x, t, **kw)[0].float().cpu()
        graphed = StaticGraph(lambda x_, t_: model.guided_logits(x_, t_, **kw))
        graphed(x, t)  # capture
        x2 = torch.where(torch.rand(x.shape, device=device) < 0.3, model.mask_id, x)  # new inputs: replay reads them
        eager2 = model.guided_logits(x2, t, **kw)[0].float().cpu()
        replay2 = graphed(x2, t)[0].float().cpu()
        res["captured"] = graphed.graph is not None or torch.device(device).type != "cuda"  # not an eager fallback
        res["graph_logits_err"] = rel_err(replay2, eager2) if res["captured"] else float("nan")
        res["inputs_changed_logits"] = rel_err(eager, eager2)  # > 0: the replay did not just return the capture
        toks = {}
        for run in ("eager", "graph", "kept"):  # "kept": the graph the call before captured (batch 2 keeps it)
            g = torch.Generator(device=device).manual_seed(5)
            sampler = DiffusionSamplerConfig(steps=steps, cuda_graph=run != "eager")
            toks[run] = model.sample(cond, data["token_mask"], sampler, generator=g).cpu()
        res["token_agreement"] = float((toks["eager"] == toks["graph"]).float().mean())
        # the same replays from the same noise: a kept graph that read the call before's inputs would differ
        res["kept_graph_token_mismatch"] = float((toks["graph"] != toks["kept"]).float().mean())
    model.cpu()
    return verdict(res, {"graph_logits_err": 1e-3, "kept_graph_token_mismatch": 1e-3})


def talker_for_generation(args, device, batch: int):
    """The paper-size Talker (random weights; its backbone in bf16, its heads in fp32, as released) and ``batch``
    rows of T2AV conditions: a 40-token text, a speaker and a first motion frame."""
    from talker_t2av.cfm import TalkerConditions
    from talker_t2av.checkpoints import set_inference_dtype
    from talker_t2av.model import TalkerT2AV

    cfg = talker_config(args.smoke)
    torch.manual_seed(0)
    model = TalkerT2AV(cfg).to(device).eval()
    if not args.smoke:
        set_inference_dtype(model, torch.bfloat16, torch.float32)
    ids = torch.randint(0, cfg.backbone["vocab_size"], (batch, 12 if args.smoke else 40), device=device)
    cond = TalkerConditions(ids, torch.ones_like(ids, dtype=torch.bool),
                            torch.randn(batch, cfg.speaker_dim, device=device),
                            torch.randn(batch, cfg.motion_dim, device=device))
    return model, cond


def t2av_config(patches: int):
    """T2AV for exactly ``patches`` patches (the stop head ignored), 10 Euler steps, CFG 2: the goal's sampler."""
    from talker_t2av.cfm import CFMSamplerConfig, GenerationConfig

    sampler = CFMSamplerConfig(steps=10, guidance=2.0, temperature=0.7)
    return GenerationConfig(mode="t2av", speech=sampler, motion=sampler, max_patches=patches, min_patches=10**9)


@torch.no_grad()
def sample_talker(args, device, batch: int, seconds: float, fast: tuple[str, ...] = ("graph",)) -> dict:
    """T2AV, eager, then each of ``fast`` ("graph": the decoding step and the heads' loop captured as CUDA graphs,
    kept between calls, so timed at the call that captures and at the next; the two heads' decoders paired, one
    batched pass of both, as ``generate`` runs them by default; "graph_unpaired": the heads one by one;
    "graph_streams": one by one on two streams, parallel branches of the graph; "compile": torch.compile with
    CUDA graphs) on the same noise: RTF and first-patch latency of each, compile or capture time, and each against
    eager (the first patch is gated; the whole output is reported, since the loop feeds each patch back through the
    bf16 backbone and rounding compounds)."""
    from talker_t2av.cfm import generate

    model, cond = talker_for_generation(args, device, batch)

    def run(how: str, patches: int):
        gen = t2av_config(patches)
        first = {}

        def on_patch(k, *_):
            if k == 0 and "t" not in first:
                sync(device)
                first["t"] = time.perf_counter()

        g = torch.Generator(device=device).manual_seed(7)
        sync(device)
        tick = time.perf_counter()
        out = generate(model, cond, gen, generator=g, compile=how == "compile", cuda_graph=how.startswith("graph"),
                       head_streams=how == "graph_streams", paired_heads=how != "graph_unpaired", on_patch=on_patch)
        sync(device)
        return out, time.perf_counter() - tick, first["t"] - tick if "t" in first else None

    patches = int(seconds * 25) // 4
    run("eager", 2)  # warm-up
    reset_peak(device)
    eager, wall, latency = run("eager", patches)
    audio = len(eager.speech[0]) / 25
    res = {"batch": batch, "speech_s": audio, "wall_s": wall, "rtf_per_clip": wall / audio,
           "first_patch_latency_s": latency, "peak_mem_gib": peak_mem_gib(device)}
    limits, p = {}, model.patch_size
    for how in fast:
        if how == "compile":  # compiled once, cached on the model; a graph is captured at each call's first patch
            tick = time.perf_counter()
            run(how, 2)
            res["compile_s"] = time.perf_counter() - tick
        if how.startswith("graph"):  # the first call captures (kept for the next call of this batch size): timed apart
            _, first_wall, first_latency = run(how, patches)
            res.update({f"{how}_capture_call_wall_s": first_wall,
                        f"{how}_capture_call_first_patch_latency_s": first_latency})
        reset_peak(device)
        out, wall, latency = run(how, patches)
        res.update({f"{how}_wall_s": wall, f"{how}_rtf_per_clip": wall / audio, f"{how}_first_patch_latency_s": latency,
                    f"{how}_peak_mem_gib": peak_mem_gib(device), f"{how}_speedup": res["wall_s"] / wall})
        res[f"{how}_first_patch_err"] = rel_err(torch.stack([s[:p] for s in out.speech]),
                                                torch.stack([s[:p] for s in eager.speech]))
        n = min(len(out.speech[0]), len(eager.speech[0]))
        res[f"{how}_whole_speech_err"] = rel_err(out.speech[0][:n], eager.speech[0][:n])
        # compile runs the same backbone forward as eager; the graph path prefills and decodes through the
        # fixed-size cache (another attention kernel over a masked cache), so the two differ at bf16 rounding
        # (4.7e-3 on an H200); the fp32 equality of the two caches is a CPU test (tests/talker_t2av/test_decode.py)
        limits[f"{how}_first_patch_err"] = 1e-2 if how.startswith("graph") else 1e-3
    model.cpu()
    res = verdict(res, limits)
    if audio <= 0:
        res["status"] = "fail"
    return res


@torch.no_grad()
def profile_hicodit(args, device, out: Path) -> dict:
    """HiCoDiT's batch-1 sampling call (10 s, 64 steps, full guidance, the CUDA-graph step kept from the call
    before) under the profiler: how much of the wall time the GPU was busy, with which kernels
    (``profile_hicodit_b1.md``). Run C left it at 7x its FLOP floor with the launches gone; this says whether the
    rest is the kernels themselves or the GPU waiting between them."""
    from kernel_profile import kernel_table, profile_run

    from hicodit.diffusion import DiffusionSamplerConfig

    cfg, model = hicodit_parts(args.smoke)
    model = model.to(device).eval()
    frames, steps = (25, 4) if args.smoke else (250, 64)
    data = to_dev(hicodit_batch(cfg, 1, frames), device)
    graph = torch.device(device).type == "cuda"
    g = torch.Generator(device=device).manual_seed(0)
    with torch.autocast(torch.device(device).type, dtype=torch.bfloat16, enabled=not args.smoke):
        cond = model.conditions(data)[0]
        model.sample(cond, data["token_mask"], DiffusionSamplerConfig(steps=2, cuda_graph=graph), generator=g)
        sampler = DiffusionSamplerConfig(steps=steps, cuda_graph=graph)
        res = profile_run(lambda: model.sample(cond, data["token_mask"], sampler, generator=g), device)
    title = f"# HiCoDiT sampling, batch 1, {frames / 25:g} s, {steps} steps, full guidance, CUDA graph: {graph}"
    (out / "profile_hicodit_b1.md").write_text(f"{title}\n\n{kernel_table(res, ('step', steps))}")
    model.cpu()
    return {**res, "steps": steps, "rtf_per_clip": res["wall_ms"] / 1e3 / (frames / 25), "status": "ok"}


@torch.no_grad()
def profile_talker(args, device, out: Path) -> dict:
    """Talker T2AV at batch 1 (4 s, the goal's sampler) through the CUDA graphs kept from the call before, under
    the profiler (``profile_talker_b1.md``): the first patch's time (prefill included) and each later patch's, the
    GPU busy or idle, and in which kernels."""
    from kernel_profile import kernel_table, profile_run

    from talker_t2av.cfm import generate

    model, cond = talker_for_generation(args, device, 1)
    patches = 2 if args.smoke else 25
    graph = torch.device(device).type == "cuda"

    first = {}

    def on_first_patch(k, *_):  # one host sync, at the first patch: the prefill's share of the wall apart
        if k == 0:
            sync(device)
            first["t"] = time.perf_counter()

    def run():
        first["start"] = time.perf_counter()
        return generate(model, cond, t2av_config(patches), generator=torch.Generator(device=device).manual_seed(7),
                        cuda_graph=graph, on_patch=on_first_patch)

    run()  # captures the graphs, kept for the call profiled
    res = profile_run(run, device)
    first_ms = (first["t"] - first["start"]) * 1e3  # prefill and the first patch
    res.update(first_patch_ms=first_ms, ms_per_patch=(res["wall_ms"] - first_ms) / (patches - 1))
    title = (f"# Talker T2AV, batch 1, {patches} patches, 10 Euler steps, CFG 2, CUDA graphs kept: {graph}\n\n"
             f"first patch (prefill included) after {first_ms:.1f} ms, then {res['ms_per_patch']:.2f} ms a patch")
    (out / "profile_talker_b1.md").write_text(f"{title}\n\n{kernel_table(res, ('patch', patches))}")
    model.cpu()
    seconds = patches * model.patch_size / 25
    return {**res, "patches": patches, "rtf_per_clip": res["wall_ms"] / 1e3 / seconds, "status": "ok"}


# ------------------------------------------------------------------------------------------ driver
def plan(args, device, out: Path):
    """(part name, callable) in run order: the cheap correctness checks first, then sampling, then training and
    the inference costs."""
    s = args.smoke
    hb, hb_big = (2, 2) if s else (args.hicodit_batch, args.hicodit_big_batch)
    tb, tb_big = (2, 2) if s else (8, args.talker_big_batch)
    tsteps, hf, tf = (3, 25, 40) if s else (16, 250, 250)  # steps; frames (10 s clips at 25 fps)
    sample_steps = 4 if s else 64

    def train(family, parallel, compile_, batch, name_suffix="", **kw):
        return lambda: train_run(args, device, out, family, parallel, compile_, tsteps, batch,
                                 hf if family == "hicodit" else tf, name_suffix=name_suffix, **kw)

    parts = [
        ("hw.ceilings", lambda: hardware_ceilings(args, device)),
        ("correct.hicodit", lambda: check_hicodit(args, device)),
        ("correct.talker", lambda: check_talker(args, device)),
        ("correct.attention", lambda: check_attention(args, device)),
        ("correct.checkpoint", lambda: check_checkpoint(args, device, out)),
        ("correct.hicodit_graph", lambda: check_hicodit_graph(args, device)),
        ("sample.hicodit_b1", lambda: sample_hicodit(args, device, 1, sample_steps, hf, graph=False)),
        ("sample.hicodit_b1_graph", lambda: sample_hicodit(args, device, 1, sample_steps, hf, graph=True)),
        ("sample.hicodit_b8_graph", lambda: sample_hicodit(args, device, 2 if s else 8, sample_steps, hf, graph=True)),
        ("sample.hicodit_b32_graph", lambda: sample_hicodit(args, device, 2 if s else 32, sample_steps, hf,
                                                            graph=True)),
        # the graph took the launches away and left batch 1 at 7x its floor (RTF 0.042 against 0.006, run C),
        # most likely in the many small kernels: compiled before the capture, the graph replays fused ones
        ("sample.hicodit_b1_graph_compile", lambda: sample_hicodit(args, device, 1, sample_steps, hf, graph=True,
                                                                   compile_blocks=True)),
        ("sample.talker_b1", lambda: sample_talker(args, device, 1, 0.5 if s else 10.0)),
        ("sample.talker_b8", lambda: sample_talker(args, device, 2 if s else 8, 0.5 if s else 10.0)),
        # the kept graphs left batch 1 at 15 ms a patch (8 for RTF 0.05), most of it the two heads' 20 passes of
        # small kernels one after the other: paired (the default: one batched pass of both heads' decoders), one
        # by one as before, and one by one on two streams sharing the GPU, read side by side
        ("sample.talker_b1_heads", lambda: sample_talker(args, device, 1, 0.5 if s else 10.0,
                                                         ("graph", "graph_unpaired", "graph_streams"))),
        # where the batch-1 time goes, kernel by kernel (profile_*.md): busy on kernels, or idle between them; both
        # replay graphs kept from a warm-up call, so nothing is captured under the profiler
        ("profile.talker_b1", lambda: profile_talker(args, device, out)),
        ("profile.hicodit_b1", lambda: profile_hicodit(args, device, out)),
        # what the goals are read on first (MFU at the large batch), then the inference costs, then the rest:
        # a part that would start after the budget is skipped
        ("train.hicodit_ddp_compile_big", train("hicodit", "ddp", True, hb_big, "_big")),
        ("train.talker_ddp_compile_big", train("talker", "ddp", True, tb_big, "_big")),
        ("train.talker_ddp_big", train("talker", "ddp", False, tb_big, "_big")),
        *[(part, lambda part=part: bench_script(args, part)) for part in BENCH_SCRIPTS],
        ("train.hicodit_ddp", train("hicodit", "ddp", False, hb)),
        ("train.talker_ddp", train("talker", "ddp", False, tb)),
        ("train.hicodit_fsdp", train("hicodit", "fsdp", False, hb)),
        ("train.hicodit_ddp_big", train("hicodit", "ddp", False, hb_big, "_big")),
    ]
    extended = [  # measured on 2026-11-28 (docs/gpu.md); --extended runs them again
        ("train.hicodit_ddp_ckpt", train("hicodit", "ddp", False, hb, checkpointing=True)),
        ("train.hicodit_ddp_compile", train("hicodit", "ddp", True, hb)),
        ("train.talker_fsdp", train("talker", "fsdp", False, tb)),
        # inductor compiles the heads for ~140 s on an H200 (the CUDA graph alone captures them in ~1 s)
        ("sample.talker_b1_compile", lambda: sample_talker(args, device, 1, 0.5 if s else 10.0, ("compile",))),
    ]
    if args.extended:
        parts += extended
    if s:  # smoke: one of each kind is enough to keep the code from rotting
        keep = {"hw.ceilings", "correct.hicodit", "correct.talker", "correct.attention", "correct.checkpoint",
                "correct.hicodit_graph", "sample.hicodit_b1_graph", "sample.talker_b1", "sample.talker_b1_heads",
                "profile.hicodit_b1", "profile.talker_b1",
                "infer.maskgct_codec",
                "infer.lia_x", "train.hicodit_ddp", "train.talker_ddp"}
        parts = [p for p in parts if p[0] in keep]
    if args.only:
        parts = [p for p in parts if any(p[0].startswith(o) for o in args.only.split(","))]
    return parts


def headline(results: dict, device_name: str) -> dict:
    parts = results["parts"]

    def get(part, key):
        return parts.get(part, {}).get(key)

    checks_total = sum(p.get("checks_total", 0) for p in parts.values())
    checks_passed = sum(p.get("checks_passed", 0) for p in parts.values())
    def best(prefix, key, pick=max):
        vals = [p[key] for k, p in parts.items() if k.startswith(prefix) and isinstance(p.get(key), float)]
        return pick(vals) if vals else None

    talker_rtf = [v for k in ("rtf_per_clip", "graph_rtf_per_clip") if (v := get("sample.talker_b1", k)) is not None]
    talker_rtf += [v for part, key in (("sample.talker_b1_compile", "compile_rtf_per_clip"),
                                       ("sample.talker_b1_heads", "graph_rtf_per_clip"),
                                       ("sample.talker_b1_heads", "graph_unpaired_rtf_per_clip"),
                                       ("sample.talker_b1_heads", "graph_streams_rtf_per_clip"))
                   if get(part, "status") == "ok" and (v := get(part, key)) is not None]  # a fast path counts if right
    return {
        "device": device_name,
        "hicodit_train_mfu": best("train.hicodit", "mfu"),
        "hicodit_sample_rtf_b1": best("sample.hicodit_b1", "rtf_per_clip", min),
        "hicodit_sample_speech_s_per_s": best("sample.hicodit", "speech_s_per_s"),
        "talker_train_speedup_vs_released": None,  # part 4 (released code) not built in this slice
        "talker_generate_rtf_b1": min(talker_rtf) if talker_rtf else None,
        "talker_generate_speedup_vs_released": None,
        "talker_train_mfu": best("train.talker", "mfu"),
        "matmul_tflops_measured": get("hw.ceilings", "matmul_tflops"),
        "copy_tb_per_s_measured": get("hw.ceilings", "copy_tb_per_s"),
        "checks_passed": checks_passed,
        "checks_total": checks_total,
    }


def fmt(v) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.3g}" if abs(v) >= 1e-3 or v == 0 else f"{v:.2e}"
    return str(v)


SUMMARY_KEYS = ("matmul_tflops", "copy_tb_per_s", "graph_logits_err", "token_agreement", "kept_graph_token_mismatch",
                "fp32_logits_err", "bf16_logits_err", "fp32_loss_err", "bf16_loss_err", "fp32_grad_norm_err",
                "bf16_grad_norm_err", "fp32_grad_err", "bf16_grad_err", "sdpa_default_vs_math_err",
                "efficient_vs_math_err", "cudnn_vs_math_err", "cpu_vs_device_err", "step_s_median_second_half",
                "codec_tokens_per_s", "model_tflops_per_s", "mfu", "peak_mem_gib_nvidia_smi", "rtf_per_clip",
                "speech_s_per_s", "wall_over_floor", "step_over_floor", "first_patch_latency_s", "peak_mem_gib",
                "graph_rtf_per_clip", "graph_first_patch_latency_s", "graph_first_patch_err", "graph_whole_speech_err",
                "graph_unpaired_rtf_per_clip", "graph_unpaired_first_patch_latency_s", "graph_unpaired_first_patch_err",
                "graph_streams_rtf_per_clip", "graph_streams_first_patch_latency_s", "graph_streams_first_patch_err",
                "compile_s", "compile_rtf_per_clip", "compile_first_patch_latency_s", "compile_first_patch_err",
                "compile_whole_speech_err", "graph_capture_call_wall_s", "graph_unpaired_capture_call_wall_s",
                "graph_streams_capture_call_wall_s", "capture_call_rtf_per_clip", "busy_fraction", "idle_ms",
                "kernels", "first_patch_ms", "ms_per_patch", "frames_per_s", "encode_rtf", "decode_rtf",
                "speaker_rtf", "encode_frames_per_s", "render_frames_per_s", "train_step_ms", "error")


def markdown(results: dict) -> str:
    head = results["headline"]
    lines = [f"# GPU suite: {results['device_name']}", "",
             f"- date: {results['date']}, torch {results['torch']}, CUDA {results['cuda']}, smoke: {results['smoke']}",
             f"- command: `{results['command']}`",
             f"- MFU peak used: {results['peak_tflops']} TFLOP/s (H100 / H200 SXM dense bf16, datasheet)",
             f"- wall: {results['wall_s']:.0f} s", "", "| part | status | figures |", "|---|---|---|"]
    for name, p in results["parts"].items():
        figs = ", ".join(f"{k}={fmt(p[k])}" for k in SUMMARY_KEYS if k in p and k != "error")
        if p.get("error"):
            figs += (", " if figs else "") + "error: " + p["error"].replace("\n", " / ")[-300:]
        lines.append(f"| {name} | {p.get('status')} | {figs} |")
    lines += ["", "| headline | value |", "|---|---|"] + [f"| {k} | {fmt(v)} |" for k, v in head.items()]
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out-dir", required=True)
    ap.add_argument("--smoke", action="store_true", help="CPU, tiny configs, tiny step counts")
    ap.add_argument("--budget-s", type=float, default=None,
                    help="skip parts started after this (default 450; 240 with --smoke)")
    ap.add_argument("--peak-tflops", type=float, default=H100_BF16_PEAK_TFLOPS)
    ap.add_argument("--hicodit-batch", type=int, default=16, help="per-GPU batch of 10 s clips in training")
    ap.add_argument("--hicodit-big-batch", type=int, default=128,
                    help="the large per-GPU batch (10 s clips; 46.5 GB compiled on an H200)")
    ap.add_argument("--talker-big-batch", type=int, default=32, help="the Talker's large per-GPU batch (10 s clips)")
    ap.add_argument("--extended", action="store_true",
                    help="also the parts measured once (activation checkpointing, compile at batch 16, Talker "
                         "FSDP, the compiled Talker heads: ~5 more minutes)")
    ap.add_argument("--only", default=None, help="comma-separated part-name prefixes")
    ap.add_argument("--work-dir", default=None, help="where the trainer runs write checkpoints (default: --out-dir)")
    args = ap.parse_args(argv)
    args.budget_s = args.budget_s or (240.0 if args.smoke else 450.0)  # smoke: ~20 s idle, room for a busy CI
    if args.smoke:
        device = "cpu"
        if "OMP_NUM_THREADS" not in os.environ:  # a caller's count is kept: more threads than free cores spin
            torch.set_num_threads(min(4, os.cpu_count() or 1))  # against each other (the test suite's workers)
    elif torch.cuda.is_available():
        device = "cuda"
    else:
        print("gpu_suite: no CUDA device (use --smoke on a CPU)", file=sys.stderr)
        return 2
    from engine.atomic import check_output_dir
    from engine.cuda_graph import capture_failures
    from engine.errors import UserFacingError

    try:  # a file in the way or a read-only folder: one line, before minutes of work
        out = check_output_dir(args.out_dir)
        if args.work_dir:
            check_output_dir(args.work_dir)
    except UserFacingError as e:
        print(f"gpu_suite: {e}", file=sys.stderr)
        return 2
    out.mkdir(parents=True, exist_ok=True)
    from engine.layers.attention import set_attention_backend

    set_attention_backend("sdpa")
    name = torch.cuda.get_device_name() if device == "cuda" else "cpu"
    results = {"device_name": name, "torch": torch.__version__, "cuda": torch.version.cuda, "smoke": args.smoke,
               "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
               "command": "python scripts/gpu_suite.py " + " ".join(sys.argv[1:] if argv is None else argv),
               "peak_tflops": args.peak_tflops, "budget_s": args.budget_s, "parts": {}}
    say(f"device {name}, torch {torch.__version__}, budget {args.budget_s:.0f} s, peak {args.peak_tflops} TFLOP/s")
    for part, fn in plan(args, device, out):
        if time.perf_counter() - T0 > args.budget_s:
            results["parts"][part] = {"status": "skipped", "reason": "time budget spent"}
            say(f"{part}: skipped (budget)")
            continue
        say(f"{part}: start")
        tick = time.perf_counter()
        failed_before = len(capture_failures)
        try:
            res = fn()
        except Exception as e:  # noqa: BLE001 - record and go on
            res = {"status": "error", "error": f"{type(e).__name__}: {e}"[:2000],
                   "traceback": traceback.format_exc()[-4000:]}
        res["part_s"] = time.perf_counter() - tick
        if len(capture_failures) > failed_before:  # a graph fell back to eager: its timing is not the graph's
            res["graph_capture_failures"] = capture_failures[failed_before:]
            res["status"] = "fail"
            res.setdefault("error", "CUDA graph capture failed (ran eagerly): "
                           + "; ".join(res["graph_capture_failures"]))
        results["parts"][part] = res
        if device == "cuda":
            torch.cuda.empty_cache()
        say(f"{part}: {res['status']} in {res['part_s']:.1f} s  "
            + ", ".join(f"{k}={fmt(res[k])}" for k in SUMMARY_KEYS if k in res and k != "error")
            + (f"  ERROR {res['error'][-400:]}" if res.get("error") else ""))
        write(results, out)
    results["headline"] = headline(results, name)
    write(results, out)
    print(markdown(results), flush=True)
    return 0


def write(results: dict, out: Path) -> None:
    results["wall_s"] = time.perf_counter() - T0
    results.setdefault("headline", {})
    # the headline keys also at the top level (issue 45's layout), ahead of the parts
    top = {**results["headline"], **{k: v for k, v in results.items() if k not in results["headline"]}}
    (out / "gpu_suite.json").write_text(json.dumps(top, indent=2, default=str))
    (out / "gpu_suite.md").write_text(markdown(results))


if __name__ == "__main__":
    sys.exit(main())
