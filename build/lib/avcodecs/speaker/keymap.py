"""Parameter names: UniSpeech/fairseq WavLM (as in ``wavlm_large_finetune.pth``) <-> transformers WavLM.

The same table drives both directions. It covers the layer-norm-first WavLM layout (Large):
layer-normed conv feature extractor, weight-normed positional conv, gated relative position bias
(bucket embedding in layer 0 only). transformers' own conversion script
(convert_wavlm_original_pytorch_checkpoint_to_pytorch.py) documents the same correspondence.

Checkpoint layout: ``feature_extract.model.<fairseq WavLM name>`` for the SSL model (s3prl's
upstream wrapper holds it as ``.model``) and the ECAPA head's names at the top level.
"""

import re

CHECKPOINT_WAVLM_PREFIX = "feature_extract.model."
WAVLM_PREFIX, HEAD_PREFIX = "wavlm.", "head."  # our SpeakerEncoder's submodules

# (fairseq / UniSpeech name, transformers name); {n}: layer index, {p}: weight|bias, {x}: q|k|v|out
_RULES = [
    ("feature_extractor.conv_layers.{n}.0.{p}", "feature_extractor.conv_layers.{n}.conv.{p}"),
    ("feature_extractor.conv_layers.{n}.2.1.{p}", "feature_extractor.conv_layers.{n}.layer_norm.{p}"),
    ("layer_norm.{p}", "feature_projection.layer_norm.{p}"),
    ("post_extract_proj.{p}", "feature_projection.projection.{p}"),
    ("mask_emb", "masked_spec_embed"),
    ("encoder.pos_conv.0.weight_g", "encoder.pos_conv_embed.conv.parametrizations.weight.original0"),
    ("encoder.pos_conv.0.weight_v", "encoder.pos_conv_embed.conv.parametrizations.weight.original1"),
    ("encoder.pos_conv.0.bias", "encoder.pos_conv_embed.conv.bias"),
    ("encoder.layer_norm.{p}", "encoder.layer_norm.{p}"),
    ("encoder.layers.{n}.self_attn.{x}_proj.{p}", "encoder.layers.{n}.attention.{x}_proj.{p}"),
    ("encoder.layers.{n}.self_attn.grep_linear.{p}", "encoder.layers.{n}.attention.gru_rel_pos_linear.{p}"),
    ("encoder.layers.{n}.self_attn.grep_a", "encoder.layers.{n}.attention.gru_rel_pos_const"),
    ("encoder.layers.{n}.self_attn.relative_attention_bias.weight",
     "encoder.layers.{n}.attention.rel_attn_embed.weight"),
    ("encoder.layers.{n}.self_attn_layer_norm.{p}", "encoder.layers.{n}.layer_norm.{p}"),
    ("encoder.layers.{n}.fc1.{p}", "encoder.layers.{n}.feed_forward.intermediate_dense.{p}"),
    ("encoder.layers.{n}.fc2.{p}", "encoder.layers.{n}.feed_forward.output_dense.{p}"),
    ("encoder.layers.{n}.final_layer_norm.{p}", "encoder.layers.{n}.final_layer_norm.{p}"),
]
_FIELDS = {"n": r"\d+", "p": r"weight|bias", "x": r"q|k|v|out"}


def _compile(template: str) -> re.Pattern:
    pattern = re.escape(template)
    for name, regex in _FIELDS.items():
        pattern = pattern.replace(re.escape("{" + name + "}"), f"(?P<{name}>{regex})")
    return re.compile(pattern)


_FORWARD = [(_compile(src), dst) for src, dst in _RULES]
_INVERSE = [(_compile(dst), src) for src, dst in _RULES]


def _translate(name: str, rules) -> str | None:
    for pattern, template in rules:
        match = pattern.fullmatch(name)
        if match:
            return template.format(**match.groupdict())
    return None


def fairseq_to_transformers(name: str) -> str | None:
    """A fairseq WavLM parameter name -> the transformers ``WavLMModel`` name (None if unknown)."""
    return _translate(name, _FORWARD)


def transformers_to_fairseq(name: str) -> str | None:
    return _translate(name, _INVERSE)


def checkpoint_to_model(name: str) -> str:
    """``wavlm_large_finetune.pth`` name -> our SpeakerEncoder name. Unknown WavLM names are kept as
    they are, so the load report lists them as unexpected instead of hiding them."""
    if name.startswith(CHECKPOINT_WAVLM_PREFIX):
        mapped = fairseq_to_transformers(name[len(CHECKPOINT_WAVLM_PREFIX):])
        return name if mapped is None else WAVLM_PREFIX + mapped
    return HEAD_PREFIX + name


def model_to_checkpoint(name: str) -> str:
    """The inverse of :func:`checkpoint_to_model` (writes the original layout, e.g. for tests)."""
    if name.startswith(WAVLM_PREFIX):
        mapped = transformers_to_fairseq(name[len(WAVLM_PREFIX):])
        if mapped is None:
            raise KeyError(f"no fairseq name for WavLM parameter {name!r}")
        return CHECKPOINT_WAVLM_PREFIX + mapped
    if name.startswith(HEAD_PREFIX):
        return name[len(HEAD_PREFIX):]
    raise KeyError(f"not a SpeakerEncoder parameter: {name!r}")
