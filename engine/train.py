"""Train any task on the shared trainer: the body of ``train.py``, runnable from an installed package.

    python -m engine.train experiment=smoke                  # the same as: python train.py experiment=smoke
    torchrun --nproc_per_node=8 -m engine.train experiment=smoke trainer.parallel=fsdp

Hydra composes the run from the packaged config folder (``engine.configs.config_dir()``), so a plain
``pip install`` trains without a source checkout.
"""

import logging
import os
import sys

import hydra
from hydra.utils import instantiate
from omegaconf import DictConfig

from engine.configs import check_scalar_arguments, config_dir, register_schemas
from engine.distributed import shutdown_distributed
from engine.errors import find_user_error
from engine.logger import setup_logging
from engine.trainer import Trainer, TrainerConfig

log = logging.getLogger("train")


@hydra.main(config_path=str(config_dir()), config_name="config", version_base=None)
def train(cfg: DictConfig) -> None:
    setup_logging(int(os.environ.get("RANK", 0)))
    try:
        check_scalar_arguments(cfg.task, "task")
        task = instantiate(cfg.task)
        path = Trainer(TrainerConfig.from_node(cfg.trainer), task, run_config=cfg).fit()
    except Exception as e:  # noqa: BLE001 - a user-facing error is one line, anything else a traceback
        user_error = find_user_error(e)
        if user_error is None:
            raise
        log.error("%s", user_error)
        sys.exit(user_error.exit_status)
    finally:
        shutdown_distributed()
    if path is not None:
        log.info("last checkpoint: %s", path)


def main() -> None:
    """The command line (Hydra reads ``sys.argv``)."""
    register_schemas(sys.argv[1:])  # the trainer's, and the selected task's
    train()


if __name__ == "__main__":
    main()
