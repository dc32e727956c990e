"""The paper-size network has exactly the released checkpoint's names and shapes; released files load."""

import pytest
import torch
from safetensors.torch import save_file

from engine.weights import WeightsMismatchError, compare_shapes, shapes
from talker_t2av.checkpoints import ReleasedWeightsError, load_released_weights, reference_shapes, released_to_ours
from tests.conftest import CONFIGS, REPO, compose
from tests.talker_t2av.helpers import tiny_model

REFERENCE = REPO / "tests" / "reference" / "talker_t2av_state_dict.json"  # the released key/shape list


def test_paper_model_matches_released_names_and_shapes():
    from hydra.utils import instantiate

    from talker_t2av.model import TalkerT2AV

    cfg = instantiate(compose("model=talker_t2av_paper").model)
    with torch.device("meta"):
        model = TalkerT2AV(cfg)
    ours = shapes(model.state_dict())
    released = {released_to_ours(k): v for k, v in reference_shapes(REFERENCE).items()}
    report = compare_shapes(ours, released, "released Talker-T2AV")
    assert report.ok, report.summary()
    assert len(report.matched) == 538
    n_params = sum(p.numel() for p in model.parameters())  # tied LM head counted once
    assert 900e6 < n_params < 920e6, n_params


def released_file(tmp_path, model, drop=(), extra=None, rename=None):
    state = {k: v.clone() for k, v in model.state_dict().items() if k not in drop}
    if rename:
        state = {rename.get(k, k): v for k, v in state.items()}
    state.update(extra or {})
    path = tmp_path / "model.safetensors"
    save_file(state, str(path))
    return path


def test_released_weights_load_through_the_key_map(tmp_path):
    source = tiny_model(seed=1)
    # what a released file looks like: tied LM head omitted, frozen codec keys possibly present,
    # an older name for the speech patch encoder
    path = released_file(tmp_path, source, drop=("llm.lm_head.weight",),
                         extra={"pretrained_speech_encoder.vae.in_proj.weight": torch.zeros(2)},
                         rename={"speech_patch_encoder.cls_token": "patch_encoder.cls_token"})
    target = tiny_model(seed=2)
    report = load_released_weights(target, tmp_path)  # a folder of shards works like the file
    assert report.ok
    for name, tensor in source.state_dict().items():
        torch.testing.assert_close(target.state_dict()[name], tensor)
    assert target.llm.lm_head.weight is target.llm.model.embed_tokens.weight  # still tied
    assert load_released_weights(tiny_model(seed=3), path).ok


def test_mismatched_released_weights_stop_with_a_report(tmp_path):
    source = tiny_model()
    bad = released_file(tmp_path, source, extra={"speech_cfm.estimator.in_proj.weight": torch.zeros(7, 7)})
    with pytest.raises(WeightsMismatchError, match=r"1 mis-shaped \(speech_cfm.estimator.in_proj.weight"):
        load_released_weights(tiny_model(), bad)
    missing = released_file(tmp_path, source, drop=("head_stop.head.weight",))
    with pytest.raises(WeightsMismatchError, match="missing.*head_stop.head.weight"):
        load_released_weights(tiny_model(), missing)
    (tmp_path / "empty").mkdir()
    with pytest.raises(ReleasedWeightsError, match="no .safetensors"):
        load_released_weights(tiny_model(), tmp_path / "empty")


def test_configs_compose():
    for name in ("talker_tiny", "talker_stage1_tts", "talker_joint"):
        cfg = compose(f"experiment={name}")
        assert cfg.task._target_ == "talker_t2av.task.TalkerTask"
    assert (CONFIGS / "model" / "talker_t2av_paper.yaml").is_file()


def test_backbone_and_tokenizer_from_a_local_folder(tmp_path):
    """The production path: Qwen3 weights, config and tokenizer from one local folder; and a released
    folder that carries the backbone config and tokenizer next to its weights needs nothing else."""
    from talker_t2av.checkpoints import load_released_talker
    from talker_t2av.model import TalkerT2AV
    from talker_t2av.tokenizer import build_char_tokenizer
    from tests.talker_t2av.helpers import tiny_config

    source = tiny_model(seed=5)
    source.llm.save_pretrained(tmp_path / "qwen")
    build_char_tokenizer().save_pretrained(tmp_path / "qwen")
    model = TalkerT2AV(tiny_config(backbone_path=str(tmp_path / "qwen"), load_backbone_weights=True))
    for name, tensor in source.llm.state_dict().items():
        torch.testing.assert_close(model.llm.state_dict()[name], tensor)
    assert type(model.llm).__name__ == "Qwen3ForCausalLM"

    released = tmp_path / "talker-t2av"
    released.mkdir()
    for f in (tmp_path / "qwen").iterdir():  # config.json, tokenizer files, chat template
        if f.suffix != ".safetensors":
            (released / f.name).write_bytes(f.read_bytes())
    released_file(released, source, drop=("llm.lm_head.weight",))
    loaded, layout = load_released_talker(released, config=tiny_config(backbone=None))
    torch.testing.assert_close(loaded.speech_cfm.estimator.out_proj.weight, source.speech_cfm.estimator.out_proj.weight)
    assert layout.prompt_ids("hi")
