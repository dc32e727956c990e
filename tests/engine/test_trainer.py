"""The shared trainer: learning, exact resume, failure behaviour, checkpoint round trip."""

import json

import pytest
import torch
from hydra.utils import instantiate
from safetensors.torch import load_file

from engine import checkpoint as ckpt
from engine.toy import ToyTask
from engine.trainer import NonFiniteLossError
from engine.weights import WeightsMismatchError
from tests.conftest import build_trainer, compose

SMOKE = ("experiment=smoke", "trainer.progress=false", "trainer.num_workers=0")


def make_trainer(tmp_path, *overrides, task=None):
    cfg = compose(*SMOKE, f"trainer.out_dir={tmp_path}", *overrides)
    return build_trainer(cfg, task)


def final_weights(run_dir):
    return load_file(str(ckpt.find_latest(run_dir / "checkpoints") / ckpt.MODEL_FILE))


def losses(run_dir):
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return [r["train/loss"] for r in rows if "train/loss" in r]


def test_smoke_run_loss_falls_and_writes_checkpoints(tmp_path):
    make_trainer(tmp_path).fit()
    curve = losses(tmp_path)
    assert curve[-1] < 0.25 * curve[0], curve
    saved = ckpt.list_checkpoints(tmp_path / "checkpoints")
    assert [p.name for p in saved] == ["step_00000050", "step_00000100", "step_00000150"]
    for name in ("config.yaml", "model.safetensors", "ema.safetensors", "trainer_state.pt", "meta.json"):
        assert (saved[-1] / name).is_file()
    assert (tmp_path / "samples" / "step_00000150" / "val.txt").is_file()


def test_kill_and_resume_is_bitwise_identical(tmp_path):
    # Input noise makes the loss consume the RNG, so an unrestored RNG would show up here.
    common = ("trainer.max_steps=12", "trainer.save_every=4", "model.input_noise=0.1")
    make_trainer(tmp_path / "straight", *common).fit()
    make_trainer(tmp_path / "interrupted", *common, "trainer.stop_after_steps=7").fit()  # stops mid-epoch
    assert ckpt.find_latest(tmp_path / "interrupted" / "checkpoints").name == "step_00000007"
    make_trainer(tmp_path / "interrupted", *common, "trainer.resume=auto").fit()
    a, b = final_weights(tmp_path / "straight"), final_weights(tmp_path / "interrupted")
    assert a.keys() == b.keys()
    for name in a:
        assert torch.equal(a[name], b[name]), name
    ema_a = load_file(str(ckpt.find_latest(tmp_path / "straight/checkpoints") / ckpt.EMA_FILE))
    ema_b = load_file(str(ckpt.find_latest(tmp_path / "interrupted/checkpoints") / ckpt.EMA_FILE))
    assert all(torch.equal(ema_a[n], ema_b[n]) for n in ema_a)


def test_keep_last_prunes_old_checkpoints(tmp_path):
    make_trainer(tmp_path, "trainer.max_steps=10", "trainer.save_every=2", "trainer.keep_last=2").fit()
    assert [p.name for p in ckpt.list_checkpoints(tmp_path / "checkpoints")] == ["step_00000008", "step_00000010"]


class NanAfter(ToyTask):
    """The toy task whose loss turns NaN from the ``bad_step``-th forward on."""

    def __init__(self, base: ToyTask, bad_step: int):
        super().__init__(base.model_cfg, base.data_cfg)
        self.bad_step = bad_step

    def build_module(self):
        module = super().build_module()
        forward, calls = module.forward, [0]

        def poisoned(batch):
            calls[0] += 1
            loss, logs = forward(batch)
            return (loss * float("nan"), logs) if calls[0] >= self.bad_step else (loss, logs)

        module.forward = poisoned
        return module


def test_nan_loss_stops_with_clear_error_and_keeps_last_good_checkpoint(tmp_path):
    cfg = compose(*SMOKE)
    task = NanAfter(instantiate(cfg.task), bad_step=7)
    trainer = make_trainer(tmp_path, "trainer.save_every=4", "trainer.log_every=5", task=task)
    with pytest.raises(NonFiniteLossError, match="NaN/inf at step 7.*step_00000004"):
        trainer.fit()
    assert [p.name for p in ckpt.list_checkpoints(tmp_path / "checkpoints")] == ["step_00000004"]
    good = load_file(str(tmp_path / "checkpoints/step_00000004" / ckpt.MODEL_FILE))
    assert all(torch.isfinite(t).all() for t in good.values())


def test_crash_during_save_leaves_previous_checkpoint_as_latest(tmp_path, monkeypatch):
    real_save, calls = ckpt.save_file, [0]

    def failing_save(tensors, path):
        calls[0] += 1
        if calls[0] == 3:  # the second checkpoint's second file (model, then EMA)
            raise OSError("disk full")
        real_save(tensors, path)

    monkeypatch.setattr(ckpt, "save_file", failing_save)
    with pytest.raises(OSError, match="disk full"):
        make_trainer(tmp_path, "trainer.max_steps=8", "trainer.save_every=4").fit()
    root = tmp_path / "checkpoints"
    assert ckpt.find_latest(root).name == "step_00000004"
    assert sorted(p.name for p in root.iterdir()) == ["step_00000004"]  # no temporary folder left


def test_checkpoint_rebuilds_module_from_folder_alone(tmp_path):
    make_trainer(tmp_path, "trainer.max_steps=20", "trainer.save_every=20").fit()
    module, task, config = ckpt.load_module(tmp_path)  # run folder -> its latest checkpoint
    assert not module.training and config.experiment_name == "smoke"
    ema = load_file(str(ckpt.find_latest(tmp_path / "checkpoints") / ckpt.EMA_FILE))
    for name, param in module.named_parameters():
        assert torch.equal(param.detach(), ema[name]), name
    batch = task.collate([task.val_dataset()[i] for i in range(4)])
    loss, _ = module(batch)
    assert torch.isfinite(loss)


def test_mismatched_checkpoint_is_refused(tmp_path):
    make_trainer(tmp_path, "trainer.max_steps=4", "trainer.save_every=4").fit()
    folder = ckpt.find_latest(tmp_path / "checkpoints")
    config = ckpt.load_config(folder)
    config.task.model.dim = 48
    ckpt.OmegaConf.save(config, folder / ckpt.CONFIG_FILE)
    expected = r"mis-shaped \(net.in_proj.weight model \[48, 8\] vs file \[32, 8\]"
    with pytest.raises(WeightsMismatchError, match=expected):
        ckpt.load_module(folder)


def test_checkpoint_config_from_another_code_version_is_refused_in_one_line(tmp_path):
    make_trainer(tmp_path, "trainer.max_steps=4", "trainer.save_every=4").fit()
    folder = ckpt.find_latest(tmp_path / "checkpoints")
    config = ckpt.load_config(folder)
    config.task.model.removed_field = 3  # a field a later version of the code dropped
    ckpt.OmegaConf.save(config, folder / ckpt.CONFIG_FILE)
    with pytest.raises(ckpt.CheckpointError) as err:
        ckpt.load_module(folder)
    message = str(err.value)
    assert message.startswith(f"{folder / ckpt.CONFIG_FILE}: does not build with this version of the code")
    assert "removed_field" in message and "full_key: task.model" in message and "\n" not in message


def test_missing_checkpoint_gives_clear_error(tmp_path):
    with pytest.raises(ckpt.CheckpointError, match="no checkpoint found"):
        ckpt.load_module(tmp_path)


def test_cli_user_error_is_one_line_and_nonzero(tmp_path):
    from tests.conftest import run_cli

    proc = run_cli(["train.py", *SMOKE, f"trainer.out_dir={tmp_path}", f"trainer.resume={tmp_path}/nowhere"],
                   check=False)
    assert proc.returncode == 1
    errors = [line for line in proc.stderr.splitlines() if "ERROR" in line]
    assert len(errors) == 1 and "nowhere: checkpoint folder does not exist" in errors[0], proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr


def test_activation_checkpointing_does_not_change_training(tmp_path, monkeypatch):
    import torch.utils.checkpoint as torch_checkpoint

    import engine.parallel

    recomputed = []  # blocks whose forward ran through torch.utils.checkpoint

    def counting_checkpoint(fn, *args, **kwargs):
        recomputed.append(fn)
        return torch_checkpoint.checkpoint(fn, *args, **kwargs)

    monkeypatch.setattr(engine.parallel, "checkpoint", counting_checkpoint)
    common = ("trainer.max_steps=6", "trainer.save_every=6")
    make_trainer(tmp_path / "plain", *common).fit()
    assert not recomputed
    trainer = make_trainer(tmp_path / "ckpt", *common, "trainer.activation_checkpointing=true")
    trainer.fit()
    blocks = trainer.module.repeated_blocks()
    assert len(blocks) == 2 and {id(f.__self__) for f in recomputed} == {id(b) for b in blocks}
    assert len(recomputed) == 6 * len(blocks)  # every block, every training step
    a, b = final_weights(tmp_path / "plain"), final_weights(tmp_path / "ckpt")
    assert all(torch.allclose(a[n], b[n], atol=1e-6) for n in a)
