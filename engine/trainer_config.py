"""The trainer's settings: every ``trainer.*`` key, its type and its default (``configs/trainer/default.yaml``
extends this dataclass as the schema ``trainer/schema``). Apart from the trainer, so that composing a
config never imports the training machinery."""

from dataclasses import dataclass

from omegaconf import DictConfig, OmegaConf

from engine.errors import ConfigError


@dataclass
class TrainerConfig:
    out_dir: str = "runs/default"
    max_steps: int = 1000
    # batching (per rank, per micro-step): by padded frames, by count, or both
    max_frames: int | None = None
    batch_size: int | None = 8
    grad_accum: int = 1
    num_workers: int = 2
    # optimisation
    lr: float = 1e-4
    min_lr_ratio: float = 0.01
    warmup_steps: int = 100
    weight_decay: float = 0.01
    betas: tuple[float, float] = (0.9, 0.95)
    eps: float = 1e-8
    grad_clip: float | None = 1.0
    ema_decay: float | None = None
    # execution
    device: str = "auto"  # auto | cpu | cuda
    precision: str = "auto"  # auto (bf16 on GPU, fp32 on CPU) | bf16 | fp32
    parallel: str = "ddp"  # ddp | fsdp
    activation_checkpointing: bool = False
    compile: bool = False
    attention_backend: str = "sdpa"  # sdpa | flash | auto | eager (engine.layers.attention)
    find_unused_parameters: bool = False
    seed: int = 0
    # bookkeeping
    log_every: int = 10
    val_every: int = 0  # 0: only at the end
    val_batch_size: int = 4
    save_every: int = 1000
    keep_last: int = 3
    resume: str = "auto"  # auto (latest in out_dir, if any) | none | path to a checkpoint folder
    stop_after_steps: int | None = None  # end this invocation early (e.g. a job's time slice)
    progress: bool = True
    wandb_mode: str = "disabled"  # disabled | offline | online
    wandb_project: str = "avspeech"
    run_name: str | None = None

    @classmethod
    def from_node(cls, node: "DictConfig | dict") -> "TrainerConfig":
        """The ``trainer`` node of a composed config (or a plain dict) -> a validated config."""
        values = OmegaConf.to_container(node, resolve=True) if isinstance(node, DictConfig) else dict(node)
        values.pop("_target_", None)
        return cls(**values)

    def __post_init__(self):
        """Refuse a setting that cannot work, in one line naming the field (``trainer.<field>``)."""
        def need(ok: bool, field: str, rule: str) -> None:
            if not ok:
                raise ConfigError(f"trainer.{field}={getattr(self, field)!r}: {rule}")

        self.betas = tuple(self.betas)
        need(self.max_steps >= 1, "max_steps", "must be >= 1")
        need(self.batch_size is None or self.batch_size >= 1, "batch_size", "must be >= 1 (or null with max_frames)")
        need(self.max_frames is None or self.max_frames >= 1, "max_frames", "must be >= 1 or null")
        need(self.batch_size is not None or self.max_frames is not None, "batch_size",
             "batch_size and max_frames cannot both be null")
        need(self.grad_accum >= 1, "grad_accum", "must be >= 1")
        need(self.num_workers >= 0, "num_workers", "must be >= 0")
        need(self.lr > 0, "lr", "must be > 0")
        need(0 <= self.min_lr_ratio <= 1, "min_lr_ratio", "must be in [0, 1]")
        need(self.warmup_steps >= 0, "warmup_steps", "must be >= 0")
        need(self.weight_decay >= 0, "weight_decay", "must be >= 0")
        need(len(self.betas) == 2 and all(0 <= b < 1 for b in self.betas), "betas", "must be two values in [0, 1)")
        need(self.eps > 0, "eps", "must be > 0")
        need(self.grad_clip is None or self.grad_clip > 0, "grad_clip", "must be > 0 or null")
        need(self.ema_decay is None or 0 < self.ema_decay < 1, "ema_decay", "must be in (0, 1) or null")
        need(self.precision in ("auto", "bf16", "fp32"), "precision",
             "must be auto, bf16 or fp32 (fp16 needs loss scaling, which the trainer does not do)")
        need(self.parallel in ("ddp", "fsdp"), "parallel", "must be ddp or fsdp")
        need(self.device in ("auto", "cpu", "cuda"), "device", "must be auto, cpu or cuda")
        need(self.attention_backend in ("auto", "sdpa", "flash", "eager"), "attention_backend",
             "must be auto, sdpa, flash or eager")
        need(self.log_every >= 1, "log_every", "must be >= 1")
        need(self.val_every >= 0, "val_every", "must be >= 0 (0: only at the end)")
        need(self.val_batch_size >= 1, "val_batch_size", "must be >= 1")
        need(self.save_every >= 1, "save_every", "must be >= 1")
        need(self.keep_last is None or self.keep_last >= 1, "keep_last", "must be >= 1 or null (keep all)")
        need(self.stop_after_steps is None or self.stop_after_steps >= 1, "stop_after_steps", "must be >= 1 or null")
        need(self.wandb_mode in ("disabled", "offline", "online"), "wandb_mode", "must be disabled, offline or online")
        need(isinstance(self.resume, str) and self.resume != "", "resume", "must be auto, none or a checkpoint path")
