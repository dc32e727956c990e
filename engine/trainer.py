"""The one training loop both model families share.

    python train.py experiment=...                                   one process (CPU or one GPU)
    torchrun --nproc_per_node=8 train.py experiment=...              DDP on one node
    torchrun --nnodes=N --nproc_per_node=8 --rdzv_backend=c10d ...   several nodes, same code

One optimizer step = ``grad_accum`` micro-batches on every rank; the global batch is
world_size x grad_accum micro-batches (see ``engine.data.sampler`` for how they are dealt).
Host syncs happen only at log / validation / checkpoint points: loss values and the
non-finite check are accumulated on the device in between.
"""

import logging
import signal
import time
from contextlib import nullcontext
from pathlib import Path

import torch
from omegaconf import DictConfig, OmegaConf
from torch.distributed.checkpoint.state_dict import (
    StateDictOptions,
    get_model_state_dict,
    get_optimizer_state_dict,
    set_model_state_dict,
    set_optimizer_state_dict,
)
from torch.utils.data import DataLoader
from tqdm import tqdm

from engine import checkpoint as ckpt
from engine.atomic import check_output_dir
from engine.data.sampler import BucketBatchSampler
from engine.distributed import (
    DistInfo,
    all_reduce_max,
    all_reduce_mean,
    barrier,
    gather_objects,
    init_distributed,
)
from engine.ema import EMA
from engine.errors import (
    DataItemError,
    TrainingDivergedError,
    UserFacingError,
    without_worker_traceback,
)
from engine.layers.attention import set_attention_backend
from engine.logger import MetricsLogger
from engine.optim import build_adamw, build_scheduler
from engine.parallel import parallelize
from engine.task import Task
from engine.trainer_config import TrainerConfig
from engine.utils import seed_everything, to_device

log = logging.getLogger(__name__)


class NonFiniteLossError(TrainingDivergedError, RuntimeError):
    pass


class Trainer:
    def __init__(self, cfg: TrainerConfig, task: Task, run_config: DictConfig | dict | None = None,
                 dist_info: DistInfo | None = None):
        self.cfg, self.task = cfg, task
        self.run_config = run_config
        self.dist = dist_info or init_distributed(cfg.device)
        self.out_dir = Path(cfg.out_dir)
        self.ckpt_root = self.out_dir / "checkpoints"
        self.step = 0
        self.epoch = 0
        self.batch_in_epoch = 0
        self._stop_signal = None

    # ------------------------------------------------------------------ setup
    def _autocast_dtype(self) -> torch.dtype | None:
        precision = self.cfg.precision
        if precision == "auto":
            precision = "bf16" if self.dist.device.type == "cuda" else "fp32"
        return torch.bfloat16 if precision == "bf16" else None

    def _setup(self) -> None:
        cfg = self.cfg
        # Before any work, on every rank (so all stop together): a file in the way of the run folder, a
        # read-only or full disk is one line naming it, not a traceback at the first log or save.
        check_output_dir(self.out_dir)
        set_attention_backend(cfg.attention_backend)
        self.amp_dtype = self._autocast_dtype()
        seed_everything(cfg.seed)  # same seed on every rank: identical initial weights
        module = self.task.build_module().to(self.dist.device)
        self.par = parallelize(module, self.dist, cfg.parallel,
                               param_dtype=self.amp_dtype if cfg.parallel == "fsdp" else None,
                               activation_checkpointing=cfg.activation_checkpointing, compile=cfg.compile,
                               find_unused_parameters=cfg.find_unused_parameters)
        self.module = self.par.module
        self.params = [p for p in self.module.parameters() if p.requires_grad]
        lr_scales = self.task.lr_scales()
        self.optimizer = build_adamw(self.module, cfg.lr, cfg.weight_decay, cfg.betas, cfg.eps, lr_scales=lr_scales)
        for prefix, scale in lr_scales.items():
            log.info("learning rate x %g for %s*", scale, prefix)
        self.scheduler = build_scheduler(self.optimizer, cfg.warmup_steps, cfg.max_steps, cfg.min_lr_ratio)
        self.ema = EMA(self.module, cfg.ema_decay) if cfg.ema_decay else None

        dataset = self.task.train_dataset()
        if not hasattr(dataset, "lengths"):
            raise TypeError(f"{type(dataset).__name__} must expose `lengths` for the batch sampler")
        self.sampler = BucketBatchSampler(dataset.lengths, cfg.max_frames, cfg.batch_size, self.dist.rank,
                                          self.dist.world_size, seed=cfg.seed)
        # Own generator: building a DataLoader iterator must not consume the global RNG, or a
        # resumed run would draw different noise from an uninterrupted one.
        self.loader = DataLoader(OneLineErrors(dataset), batch_sampler=self.sampler, collate_fn=self.task.collate,
                                 num_workers=cfg.num_workers, pin_memory=self.dist.device.type == "cuda",
                                 persistent_workers=False, generator=torch.Generator())
        val = self.task.val_dataset() or dataset
        self.val_batch = self.task.collate([val[i] for i in range(min(cfg.val_batch_size, len(val)))])

        self.metrics = MetricsLogger(self.out_dir, self.dist.is_main, cfg.wandb_mode, cfg.wandb_project,
                                     cfg.run_name, self._plain_config())
        if not self._resume():
            seed_everything(cfg.seed + 1000 * self.dist.rank)  # independent noise per rank from here
        n_params = sum(p.numel() for p in self.module.parameters())
        log.info("module %s: %.2f M parameters (%.2f M trainable), %d rank(s) on %s, %s, precision %s",
                 type(self.module).__name__, n_params / 1e6, sum(p.numel() for p in self.params) / 1e6,
                 self.dist.world_size, self.dist.device, self.par.kind, self.amp_dtype or "fp32")

    def _plain_config(self) -> dict | None:
        if self.run_config is None:
            return None
        if isinstance(self.run_config, DictConfig):
            return OmegaConf.to_container(self.run_config, resolve=True)
        return dict(self.run_config)

    # ------------------------------------------------------------ checkpoints
    def _resume(self) -> bool:
        resume = self.cfg.resume
        if resume in (None, "none", "", False):
            return False
        if resume == "auto":
            if self.dist.is_main:
                ckpt.sweep_temporary(self.ckpt_root)
            barrier()
            folder = ckpt.latest_readable(self.ckpt_root)  # one line naming the broken file if none reads
        else:
            folder = ckpt.resolve_checkpoint(resume)
            ckpt.check_readable(folder)
        if folder is None:
            log.info("no checkpoint in %s: starting from scratch", self.ckpt_root)
            return False
        state = ckpt.load_trainer_state(folder)
        weights = ckpt.load_weights(folder)
        options = StateDictOptions(full_state_dict=True, strict=True)
        set_model_state_dict(self.module, weights, options=options)
        set_optimizer_state_dict(self.module, self.optimizer, state["optimizer"], options=options)
        self.scheduler.load_state_dict(state["scheduler"])
        if self.ema is not None:  # a run that turns EMA on mid-way starts the average from the weights
            self.ema.load_state_dict(ckpt.load_ema_weights(folder) or weights)
        self.step, self.epoch, self.batch_in_epoch = state["step"], state["epoch"], state["batch_in_epoch"]
        rngs = state.get("rng", [])
        if len(rngs) == self.dist.world_size:
            ckpt.set_rng_state(rngs[self.dist.rank])
        else:
            log.warning("checkpoint has RNG states for %d rank(s), this run has %d: reseeding",
                        len(rngs), self.dist.world_size)
            seed_everything(self.cfg.seed + 1000 * self.dist.rank + self.step)
        log.info("resumed from %s at step %d (epoch %d, batch %d)", folder, self.step, self.epoch,
                 self.batch_in_epoch)
        self.metrics.truncate_after(self.step)  # rows a killed run logged past this checkpoint
        return True

    def save(self) -> Path | None:
        """Checkpoint the current step (collective: every rank must call it)."""
        self._check_finite()
        options = StateDictOptions(full_state_dict=True, cpu_offload=True)
        model_state = get_model_state_dict(self.module, options=options)
        optim_state = get_optimizer_state_dict(self.module, self.optimizer, options=options)
        ema_state = self.ema.state_dict() if self.ema is not None else None
        rngs = gather_objects(ckpt.rng_state())
        path = None
        if self.dist.is_main:
            trainer_state = {"step": self.step, "epoch": self.epoch, "batch_in_epoch": self.batch_in_epoch,
                             "optimizer": optim_state, "scheduler": self.scheduler.state_dict(), "rng": rngs}
            path = ckpt.save_checkpoint(self.ckpt_root, self.step, model_state, trainer_state, self.run_config,
                                        ema_state, self.cfg.keep_last,
                                        meta={"world_size": self.dist.world_size,
                                              "task": type(self.task).__qualname__})
            log.info("saved %s", path)
        barrier()
        return path

    # ------------------------------------------------------------------- data
    def _batches(self):
        while True:
            self.sampler.set_epoch(self.epoch, self.batch_in_epoch)
            self.loader.generator.manual_seed(self.cfg.seed + self.epoch)
            try:
                for batch in self.loader:
                    self.batch_in_epoch += 1
                    yield batch
            except DataItemError as e:  # re-raised from a worker with its traceback in the message
                raise DataItemError(without_worker_traceback(e)) from None
            self.epoch += 1
            self.batch_in_epoch = 0

    # ------------------------------------------------------------------- loop
    def _install_signal_handlers(self) -> None:
        def request_stop(signum, _frame):
            self._stop_signal = signum
        for sig in (signal.SIGTERM, signal.SIGUSR1):
            try:
                signal.signal(sig, request_stop)
            except ValueError:  # not the main thread (e.g. under a notebook runner)
                pass

    def _check_finite(self) -> None:
        first_bad = int(all_reduce_max(self._first_bad_step.clone().float()).item())
        if first_bad >= 0:
            latest = ckpt.find_latest(self.ckpt_root)
            raise NonFiniteLossError(
                f"loss became NaN/inf at step {first_bad}; stopped. Last good checkpoint: "
                f"{latest or 'none (none was saved yet)'}")

    def _check_health(self, val_metrics: dict[str, float]) -> None:
        """The task's verdict on its validation metrics. Every rank validates the same batch with the
        same weights, so every rank reaches the same verdict and stops together."""
        problem = self.task.diagnose(val_metrics, self.step)
        if problem:
            latest = ckpt.find_latest(self.ckpt_root)
            raise TrainingDivergedError(
                f"{problem} (validation at step {self.step}); stopped. Last checkpoint: "
                f"{latest or 'none (none was saved yet)'}")

    def _flush_logs(self, sums: dict, counts: dict, extra: dict, bar) -> dict[str, float]:
        self._check_finite()
        names = sorted(sums)
        means = torch.stack([sums[n].float() / counts[n] for n in names])
        metrics = dict(zip(names, all_reduce_mean(means).tolist())) | extra
        self.metrics.log(self.step, metrics)
        bar.set_postfix(loss=f"{metrics.get('loss', float('nan')):.4f}", refresh=False)
        return metrics

    def validate(self) -> dict[str, float]:
        out_dir = self.out_dir / "samples" / ckpt.checkpoint_name(self.step) if self.dist.is_main else None
        if out_dir is not None:
            out_dir.mkdir(parents=True, exist_ok=True)
        batch = to_device(self.val_batch, self.dist.device)
        self.module.eval()
        try:
            with torch.no_grad(), self._autocast(), (self.ema.swapped_in() if self.ema else nullcontext()):
                metrics = self.task.validate(self.module, batch, out_dir, self.step)
        finally:
            self.module.train()
        self.metrics.log(self.step, metrics, prefix="val")
        self._check_health(metrics)
        return metrics

    def _autocast(self):
        return torch.autocast(self.dist.device.type, dtype=self.amp_dtype or torch.float32,
                              enabled=self.amp_dtype is not None)

    def fit(self) -> Path | None:
        self._setup()
        cfg = self.cfg
        if self.dist.is_main and self.run_config is not None:
            self.out_dir.mkdir(parents=True, exist_ok=True)
            OmegaConf.save(OmegaConf.create(self._plain_config()), self.out_dir / "config.yaml")
        self._install_signal_handlers()
        device = self.dist.device
        self._first_bad_step = torch.full((), -1, dtype=torch.long, device=device)
        sums: dict[str, torch.Tensor] = {}  # running sums of logged scalars, on the device
        counts: dict[str, int] = {}
        steps_since_log, start_step, last_path = 0, self.step, None
        stop_at = cfg.max_steps if cfg.stop_after_steps is None else min(cfg.max_steps,
                                                                          self.step + cfg.stop_after_steps)
        batches = self._batches()
        bar = tqdm(total=cfg.max_steps, initial=self.step, disable=not (self.dist.is_main and cfg.progress),
                   dynamic_ncols=True, desc="train")
        tick = time.perf_counter()
        self.module.train()
        while self.step < stop_at:
            self.optimizer.zero_grad(set_to_none=True)
            step_loss = torch.zeros((), device=device)
            for micro in range(cfg.grad_accum):
                batch = to_device(next(batches), device)
                with self.par.grad_sync(micro == cfg.grad_accum - 1), self._autocast():
                    loss, logs = self.par.train_module(batch)
                (loss / cfg.grad_accum).backward()
                step_loss += loss.detach().float()
                _accumulate(sums, counts, {"loss": loss, **logs})
            if cfg.grad_clip:
                grad_norm = torch.nn.utils.clip_grad_norm_(self.params, cfg.grad_clip)
                grad_norm = grad_norm.full_tensor() if hasattr(grad_norm, "full_tensor") else grad_norm
                _accumulate(sums, counts, {"grad_norm": grad_norm})
            self.optimizer.step()
            self.scheduler.step()
            self.step += 1
            if self.ema is not None:
                self.ema.update(self.step)
            bad = ~torch.isfinite(step_loss)
            self._first_bad_step = torch.where(bad & (self._first_bad_step < 0), self.step, self._first_bad_step)
            bar.update(1)
            steps_since_log += 1

            at_end = self.step == stop_at
            if self.step % cfg.log_every == 0 or at_end:
                elapsed = time.perf_counter() - tick
                extra = {"lr": self.scheduler.get_last_lr()[0], "epoch": self.epoch,
                         "sec_per_step": elapsed / steps_since_log}
                self._flush_logs(sums, counts, extra, bar)
                sums, counts, steps_since_log, tick = {}, {}, 0, time.perf_counter()
                stop = torch.tensor(float(self._stop_signal is not None), device=device)
                if all_reduce_max(stop).item():
                    log.warning("stop signal received: saving at step %d and exiting", self.step)
                    last_path = self.save()
                    break
            if cfg.val_every and self.step % cfg.val_every == 0 and not at_end:
                self.validate()
            if self.step % cfg.save_every == 0 or at_end:
                last_path = self.save()
        bar.close()
        if self.step >= cfg.max_steps and self.step > start_step:
            self.validate()
        self.metrics.close()
        return last_path


class OneLineErrors(torch.utils.data.Dataset):
    """The task's dataset, with a user-facing error of an item re-raised as DataItemError, a type
    DataLoader workers can send back whole (so the main process can show the worker's one line)."""

    def __init__(self, dataset):
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, i):
        try:
            return self.dataset[i]
        except UserFacingError as e:
            if isinstance(e, DataItemError):
                raise
            raise DataItemError(str(e)) from None


def _accumulate(sums: dict, counts: dict, values: dict) -> None:
    for name, value in values.items():
        value = value.detach().float()
        sums[name] = sums[name] + value if name in sums else value
        counts[name] = counts.get(name, 0) + 1
