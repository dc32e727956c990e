"""Text side of the sequence: the Qwen3 tokenizer and its chat template.

A training sample is the chat
    user:      the text
    assistant: one <SPEECH_FRAME> placeholder per patch
rendered by the tokenizer's chat template with thinking disabled; for Qwen3 that is

    <|im_start|>user\\n{text}<|im_end|>\\n<|im_start|>assistant\\n<think>\\n\\n</think>\\n\\n
    <SPEECH_FRAME> x n <|im_end|>\\n

The placeholders are replaced by patch tokens. Everything after the last placeholder can never
influence a prediction (causal attention; no loss reads it), so our sequences stop at the patches:
the text part is exactly the template up to the first placeholder, which is also the prompt at
generation time. ``prompt_ids`` computes it through the real template, so any tokenizer folder
with a chat template works.
"""

import logging
from pathlib import Path

from tokenizers import Tokenizer, decoders, models, pre_tokenizers

from engine.errors import UserFacingError
from engine.hub import resolve_weights

log = logging.getLogger(__name__)

SPEECH_TOKEN = "<SPEECH_FRAME>"
MOTION_TOKEN = "<MOTION_FRAME>"
CHAR_TOKENIZER = "char"

# Qwen3's layout for a [user, assistant] chat with thinking disabled, for the byte-level tokenizer
# that tests and the tiny demo use (there is no Qwen3 tokenizer file offline).
QWEN3_LAYOUT_TEMPLATE = (
    "{%- for m in messages -%}"
    "{%- if m.role == 'assistant' and loop.last -%}"
    "{{ '<|im_start|>assistant\\n<think>\\n\\n</think>\\n\\n' + m.content + '<|im_end|>\\n' }}"
    "{%- else -%}"
    "{{ '<|im_start|>' + m.role + '\\n' + m.content + '<|im_end|>\\n' }}"
    "{%- endif -%}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{ '<|im_start|>assistant\\n<think>\\n\\n</think>\\n\\n' }}{%- endif -%}"
)


class TokenizerError(UserFacingError, ValueError):
    pass


def build_char_tokenizer():
    """A byte-level tokenizer (256 byte symbols, no merges) with Qwen3's special tokens and chat
    layout: any text tokenizes offline. Vocabulary size 263."""
    from transformers import PreTrainedTokenizerFast  # noqa: PLC0415 - here, so the data module loads without it

    alphabet = pre_tokenizers.ByteLevel.alphabet()
    vocab = {symbol: i for i, symbol in enumerate(sorted(alphabet))}
    core = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    core.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    core.decoder = decoders.ByteLevel()
    tok = PreTrainedTokenizerFast(tokenizer_object=core, eos_token="<|im_end|>", pad_token="<|endoftext|>")
    tok.add_special_tokens({"additional_special_tokens": ["<|im_start|>", "<think>", "</think>"]})
    tok.chat_template = QWEN3_LAYOUT_TEMPLATE
    return add_frame_tokens(tok)


def add_frame_tokens(tokenizer):
    """Register <SPEECH_FRAME> and <MOTION_FRAME> as special tokens when the folder lacks them."""
    vocab = tokenizer.get_vocab()
    missing = [t for t in (SPEECH_TOKEN, MOTION_TOKEN) if t not in vocab]
    if missing:
        tokenizer.add_special_tokens({"additional_special_tokens": missing})
    return tokenizer


def load_tokenizer(source: str | None):
    """The tokenizer of a local model folder (Qwen3), or ``"char"`` for the built-in byte-level one."""
    if source == CHAR_TOKENIZER:
        return build_char_tokenizer()
    if not source:
        raise TokenizerError("no tokenizer: set model.tokenizer (or model.backbone_path) to a local Qwen3 folder")
    source = str(resolve_weights(source, "model.tokenizer"))  # a folder, or a registry name such as qwen3-0.6b
    if not Path(source).is_dir():
        raise TokenizerError(f"{source}: not a tokenizer folder")
    from transformers import AutoTokenizer  # noqa: PLC0415 - as above

    try:
        tok = AutoTokenizer.from_pretrained(source, local_files_only=True)
    except (OSError, ValueError) as e:
        raise TokenizerError(f"{source}: cannot load a tokenizer from this folder ({e})") from None
    if not getattr(tok, "chat_template", None):
        raise TokenizerError(f"{source}: the tokenizer has no chat template")
    return add_frame_tokens(tok)


class ChatLayout:
    """Text -> the token ids that precede the first patch. ``lowercase``: the model's
    ``lowercase_text`` (the text is lower-cased before the template)."""

    def __init__(self, tokenizer, lowercase: bool = False):
        self.tokenizer = tokenizer
        self.lowercase = lowercase
        self.speech_id = tokenizer.convert_tokens_to_ids(SPEECH_TOKEN)

    def prompt_ids(self, text: str) -> list[int]:
        if self.lowercase:
            text = text.lower()
        chat = [{"role": "user", "content": text}, {"role": "assistant", "content": SPEECH_TOKEN}]
        ids = self.tokenizer.apply_chat_template(chat, tokenize=True, add_generation_prompt=False,
                                                 enable_thinking=False)
        if hasattr(ids, "keys"):  # BatchEncoding
            ids = ids["input_ids"]
        ids = list(ids)
        if ids.count(self.speech_id) != 1:
            raise TokenizerError(f"the chat template did not keep exactly one {SPEECH_TOKEN} for text {text[:40]!r}")
        return ids[: ids.index(self.speech_id)]
