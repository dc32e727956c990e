"""The Hydra configs as installed data, and the one way package code composes them.

``configs/`` is shipped inside the distribution (it is a package: ``import configs``), so code that
needs a config (the Talker paper layout, a codec preset by name) works the same from a source tree,
an editable install and a plain ``pip install .``.

Defaults are stated once, in the dataclasses: ``TrainerConfig`` is registered as the schema
``trainer/schema`` that ``configs/trainer/default.yaml`` extends, so every ``trainer.*`` key exists,
is typed, and takes its default from the dataclass.
"""

import dataclasses
import functools
import importlib.resources
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from engine.errors import UserFacingError


class ConfigError(UserFacingError, ValueError):
    pass


def check_bool_fields(config, prefix: str) -> None:
    """Every bool field of the dataclass ``config`` holds a bool: Hydra passes a command line's
    ``x=yes`` through as the string 'yes', which would read as true."""
    for f in dataclasses.fields(config):
        value = getattr(config, f.name)
        if f.type in (bool, "bool") and not isinstance(value, bool):
            raise ConfigError(f"{prefix}.{f.name}={value!r}: must be true or false")


def config_dir() -> Path:
    """The folder holding ``config.yaml`` and the config groups."""
    return Path(str(importlib.resources.files("configs")))


# Config nodes whose every field comes from a dataclass: (group/name, "module:Class"). An experiment
# pulls them in with `- /schema/<name>@task.<field>` and sets only what differs, so the defaults are
# stated once and any field can be overridden on the command line (task.diffusion.level_schedule=...).
TARGET_SCHEMAS = {
    "hicodit_diffusion": "hicodit.diffusion:DiffusionConfig",
    "hicodit_sampler": "hicodit.diffusion:DiffusionSamplerConfig",
}


@functools.cache
def register_schemas() -> None:
    """Put the dataclass schemas into Hydra's ConfigStore (once per process)."""
    import dataclasses
    import importlib

    from hydra.core.config_store import ConfigStore

    from engine.trainer import TrainerConfig

    store = ConfigStore.instance()
    store.store(group="trainer", name="schema", node=TrainerConfig)
    for name, target in TARGET_SCHEMAS.items():
        module, cls = target.split(":")
        dataclass = getattr(importlib.import_module(module), cls)
        defaults = {f.name: getattr(dataclass(), f.name) for f in dataclasses.fields(dataclass)}
        store.store(group="schema", name=name, node={"_target_": f"{module}.{cls}", **defaults})


def compose(*overrides: str, config_name: str = "config") -> DictConfig:
    """The config ``train.py`` would see for these command-line overrides."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.errors import HydraException

    register_schemas()
    try:
        with initialize_config_dir(config_dir=str(config_dir()), version_base=None):
            return hydra_compose(config_name=config_name, overrides=list(overrides))
    except HydraException as e:
        raise ConfigError(f"config {' '.join(overrides) or config_name}: {str(e).splitlines()[0]}") from None


def trainer_config(node: DictConfig):
    """The ``trainer`` node of a composed config -> a validated ``TrainerConfig``."""
    from engine.trainer import TrainerConfig

    values = OmegaConf.to_container(node, resolve=True)
    values.pop("_target_", None)
    return TrainerConfig(**values)


def codec_config(spec: str) -> DictConfig:
    """A codec config by preset name (``configs/codec/<name>.yaml``, e.g. ``whisperx_vae_tiny``) or by
    path to a ``.yaml`` file; group defaults are resolved either way. Used by every ``--*-config`` flag."""
    path = Path(spec)
    if path.suffix in (".yaml", ".yml"):
        if not path.is_file():
            raise ConfigError(f"{path}: codec config file not found")
        node = OmegaConf.load(path)
        if "defaults" in node:  # a preset that extends another: compose it in its own folder
            from hydra import compose as hydra_compose
            from hydra import initialize_config_dir

            with initialize_config_dir(config_dir=str(path.parent.resolve()), version_base=None):
                node = hydra_compose(config_name=path.stem)
        return node
    presets = sorted(p.stem for p in (config_dir() / "codec").glob("*.yaml"))
    if spec not in presets:
        raise ConfigError(f"codec config {spec!r}: not a preset ({', '.join(presets)}) or a .yaml path")
    return compose(f"codec={spec}").codec


def build_codec(config: "DictConfig | str", weights: str | None = None):
    """A ready codec from a codec config node (or a preset name / .yaml path), optionally with another
    weights spec. ``_partial_`` nodes (built lazily by a task) are built here all the same."""
    import functools

    from hydra.utils import instantiate

    node = codec_config(config) if isinstance(config, str) else config
    node = OmegaConf.create(OmegaConf.to_container(node, resolve=True))
    node.pop("_partial_", None)
    if weights is not None:
        node.weights = weights
    built = instantiate(node)
    return built() if isinstance(built, functools.partial) else built
