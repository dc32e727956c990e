"""The Hydra configs as installed data, and the one way package code composes them.

``configs/`` is shipped inside the distribution (it is a package: ``import configs``), so code that
needs a config (the Talker paper layout, a codec preset by name) works the same from a source tree,
an editable install and a plain ``pip install .``.

Defaults are stated once, in the dataclasses: ``TrainerConfig`` is registered as the schema
``trainer/schema`` that ``configs/trainer/default.yaml`` extends, so every ``trainer.*`` key exists,
is typed, and takes its default from the dataclass. A task hands over the dataclasses of its own nodes
(``Task.config_schemas()``, e.g. HiCoDiT's diffusion and sampler) when an experiment selects it; they
become ``/schema/<name>`` nodes the experiment extends. The engine itself names no model family.
"""

import dataclasses
import functools
import importlib
import importlib.resources
import types
import typing
from collections.abc import Sequence
from pathlib import Path

from hydra import compose as hydra_compose
from hydra import initialize_config_dir
from hydra.core.config_store import ConfigStore
from hydra.errors import HydraException
from hydra.utils import get_class, instantiate
from omegaconf import DictConfig, OmegaConf

from engine.errors import ConfigError
from engine.trainer_config import TrainerConfig


def config_dir() -> Path:
    """The folder holding ``config.yaml`` and the config groups."""
    return Path(str(importlib.resources.files("configs")))


SCHEMA_GROUP = "schema"


@functools.cache
def register_schema(name: str, dataclass: type) -> None:
    """Put a dataclass into Hydra's ConfigStore as ``/schema/<name>``: a node holding its ``_target_`` and
    every field with its default. An experiment pulls it in with ``- /schema/<name>@task.<field>`` and
    sets only what differs, so the defaults are stated once, in the dataclass, and any field can be
    overridden on the command line (``task.diffusion.level_schedule=...``)."""
    defaults = {f.name: getattr(dataclass(), f.name) for f in dataclasses.fields(dataclass)}
    target = f"{dataclass.__module__}.{dataclass.__qualname__}"
    ConfigStore.instance().store(group=SCHEMA_GROUP, name=name, node={"_target_": target, **defaults})


def register_schemas(overrides: Sequence[str] = ()) -> None:
    """The schemas a composition of ``overrides`` may need: the trainer's, and those the selected task
    hands over (its class's ``config_schemas()``). Only the selected task's module is imported, so a
    Talker or smoke run never imports HiCoDiT; a model config alone (whose ``/schema/`` entries may be
    any task's) gets every experiment's task's schemas, and a codec or data config none: no task module
    is imported for a CLI's ``--*-config`` flag (seconds of start-up in every ``infer.py``)."""
    ConfigStore.instance().store(group="trainer", name="schema", node=TrainerConfig)
    target = selected_task_target(overrides)
    tasks = [target] if target else experiment_task_targets() if _override_value(overrides, "model") else ()
    for task in tasks:
        module, _, name = task.rpartition(".")
        try:
            task_class = getattr(importlib.import_module(module), name)
        except (ImportError, AttributeError):
            continue  # instantiate names the bad target later, in its own words
        for schema, dataclass in getattr(task_class, "config_schemas", dict)().items():
            register_schema(schema, dataclass)


@functools.cache
def experiment_task_targets() -> tuple[str, ...]:
    """Every task ``_target_`` the shipped experiments name, in name order, each once."""
    targets = [selected_task_target([f"experiment={path.stem}"])
               for path in sorted((config_dir() / "experiment").glob("*.yaml"))]
    return tuple(dict.fromkeys(t for t in targets if t))


def _override_value(overrides: Sequence[str], key: str) -> str | None:
    """The value the last of ``key=...`` / ``+key=...`` / ``++key=...`` gives, else None."""
    value = None
    for override in overrides:
        name, sep, given = override.lstrip("+").partition("=")
        if sep and name == key:
            value = given
    return value


def selected_task_target(overrides: Sequence[str]) -> str | None:
    """The ``task._target_`` an experiment selected by ``overrides`` sets (following the experiments it
    extends), without composing: the schemas must be registered before Hydra composes."""
    target = _override_value(overrides, "task._target_")
    if target:
        return target
    experiment = _override_value(overrides, "experiment")
    seen = set()
    while experiment and experiment not in seen:
        seen.add(experiment)
        path = config_dir() / "experiment" / f"{experiment}.yaml"
        if not path.is_file():
            return None
        node = OmegaConf.load(path)
        target = OmegaConf.select(node, "task._target_", default=None)
        if target:
            return str(target)
        parents = [d for d in node.get("defaults", []) if isinstance(d, str) and d != "_self_"]
        experiment = parents[0].removeprefix("/experiment/") if parents else None
    return None


def compose(*overrides: str, config_name: str = "config") -> DictConfig:
    """The config ``train.py`` would see for these command-line overrides."""
    register_schemas(overrides)
    try:
        with initialize_config_dir(config_dir=str(config_dir()), version_base=None):
            return hydra_compose(config_name=config_name, overrides=list(overrides))
    except HydraException as e:
        raise ConfigError(f"config {' '.join(overrides) or config_name}: {str(e).splitlines()[0]}") from None


def named_config(config_type: type, group: str, name: str, **overrides):
    """``configs/<group>/<name>.yaml`` (a named size, e.g. ``model/hicodit_tiny``) as a ``config_type``
    instance, without composing a run: the file's values over those of the files it extends (a
    ``/schema/...`` entry stands for ``config_type``'s own defaults), then ``overrides``."""
    def values(config: str) -> dict:
        path = config_dir() / group / f"{config}.yaml"
        if not path.is_file():
            raise ConfigError(f"{group} config {config!r}: no {path}")
        node = OmegaConf.to_container(OmegaConf.load(path), resolve=True)
        merged = {}
        for parent in node.pop("defaults", []):
            if isinstance(parent, str) and parent != "_self_" and not parent.startswith("/schema/"):
                merged.update(values(parent))
        node.pop("_target_", None)
        return {**merged, **node}

    return config_type(**{**values(name), **overrides})


def codec_config(spec: str) -> DictConfig:
    """A codec config by preset name (``configs/codec/<name>.yaml``, e.g. ``whisperx_vae_tiny``) or by
    path to a ``.yaml`` file; group defaults are resolved either way. Used by every ``--*-config`` flag."""
    path = Path(spec)
    if path.suffix in (".yaml", ".yml"):
        if not path.is_file():
            raise ConfigError(f"{path}: codec config file not found")
        node = OmegaConf.load(path)
        if "defaults" in node:  # a preset that extends another: compose it in its own folder
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
    node = codec_config(config) if isinstance(config, str) else config
    node = OmegaConf.create(OmegaConf.to_container(node, resolve=True))
    node.pop("_partial_", None)
    if weights is not None:
        node.weights = weights
    built = instantiate(node)
    return built() if isinstance(built, functools.partial) else built


SCALAR_KINDS = {bool: "true or false", int: "an integer", float: "a number", str: "a string"}


def _scalar_types(hint) -> tuple[type, ...] | None:
    """The scalar types an annotation admits (None among them for ``X | None``), or None where it admits
    anything else too (a config node, a list, a callable): those are not checked here."""
    if hint is type(None) or hint in SCALAR_KINDS:
        return (hint,)
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        args = typing.get_args(hint)
        if all(a is type(None) or a in SCALAR_KINDS for a in args):
            return args
    return None


def _admits(value, kinds: tuple[type, ...]) -> bool:
    if value is None or isinstance(value, bool):  # bool is an int to Python, not to a config
        return type(value) in kinds
    if isinstance(value, (int, float)) and str in kinds:  # a folder named 2024 reaches us as an int
        return True
    if isinstance(value, int):
        return int in kinds or float in kinds
    if isinstance(value, float):  # NaN is a number: ranges are the task's own checks
        return float in kinds
    return isinstance(value, str) and str in kinds


def check_scalars(cls: type, values: dict, where: str) -> None:
    """``values`` (argument name -> value) against the annotations of ``cls``'s constructor: a scalar argument
    given something else is one line naming it (``task.val_max_seconds must be a number, got 'abc'``).
    Arguments whose annotation is not a plain scalar (config nodes, lists) are left to their own schemas."""
    try:
        hints = typing.get_type_hints(cls.__init__)
    except Exception:  # noqa: BLE001 - a hint it cannot read: the constructor reports its own errors
        return
    for key, value in values.items():
        kinds = _scalar_types(hints.get(key))
        if kinds is not None and not _admits(value, kinds):
            wanted = " or ".join(["null" if k is type(None) else SCALAR_KINDS[k] for k in kinds])
            raise ConfigError(f"{where}.{key} must be {wanted}, got {value!r}")


def check_scalar_arguments(node: DictConfig, where: str) -> None:
    """:func:`check_scalars` on a ``_target_`` node before it is built: ``task.val_max_seconds=abc`` stops here
    with one line, not an hour later at the first validation."""
    target = node.get("_target_") if isinstance(node, DictConfig) else None
    if not target:
        return
    try:
        cls = get_class(target)
    except Exception:  # noqa: BLE001 - instantiate names a bad target itself
        return
    check_scalars(cls, {key: node[key] for key in node if not OmegaConf.is_missing(node, key)}, where)
