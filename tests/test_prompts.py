"""A1111's prompt syntax: its documented parser examples, chunking, BREAK, emphasis and clip skip."""
import pytest
import torch
import transformers

from engine.models import CLIPTextConfig, CLIPTextModel
from engine.prompts import COMMA_ID, PromptEncoder, parse_prompt_attention, tokenize_chunks
from engine.tokenizer import BOS_ID, EOS_ID, CLIPTokenizer
from tests.reference import TINY_CLIP
from tests.test_models_parity import engine_twin

# The examples in A1111's parse_prompt_attention docstring, verbatim.
A1111_EXAMPLES = [
    ("normal text", [["normal text", 1.0]]),
    ("an (important) word", [["an ", 1.0], ["important", 1.1], [" word", 1.0]]),
    ("(unbalanced", [["unbalanced", 1.1]]),
    ("\\(literal\\]", [["(literal]", 1.0]]),
    ("(unnecessary)(parens)", [["unnecessaryparens", 1.1]]),
    ("a (((house:1.3)) [on] a (hill:0.5), sun, (((sky))).",
     [["a ", 1.0], ["house", 1.5730000000000004], [" ", 1.1], ["on", 1.0], [" a ", 1.1], ["hill", 0.55],
      [", sun, ", 1.1], ["sky", 1.4641000000000006], [".", 1.1]]),
]


@pytest.mark.parametrize("text, expected", A1111_EXAMPLES)
def test_parser_matches_a1111_examples(text, expected):
    assert parse_prompt_attention(text) == expected


def test_square_brackets_break_and_escapes():
    assert parse_prompt_attention("[faint]") == [["faint", pytest.approx(1 / 1.1)]]
    assert parse_prompt_attention("a cat BREAK a dog") == [["a cat", 1.0], ["BREAK", -1], ["a dog", 1.0]]
    assert parse_prompt_attention("\\\\ back") == [["\\ back", 1.0]]
    assert parse_prompt_attention("") == [["", 1.0]]


@pytest.fixture(scope="module")
def tokenizer():
    return CLIPTokenizer()


def test_short_prompt_is_one_chunk_with_weights(tokenizer):
    chunks = tokenize_chunks(tokenizer, "a (red:1.5) fox")
    assert len(chunks) == 1
    c = chunks[0]
    assert len(c.tokens) == 77 and c.tokens[0] == BOS_ID and c.tokens[1:4] == tokenizer.encode("a red fox")
    assert c.tokens[4:] == [EOS_ID] * 73
    assert c.multipliers[:5] == [1.0, 1.0, 1.5, 1.0, 1.0]


def test_long_prompt_splits_into_77_token_chunks(tokenizer):
    words = " ".join(f"word{i}" for i in range(60))   # each "wordN" is 2-3 tokens: well over 75
    chunks = tokenize_chunks(tokenizer, words)
    flat = tokenizer.encode(words)
    assert len(chunks) == -(-len(flat) // 75)
    assert all(len(c.tokens) == 77 and c.tokens[0] == BOS_ID and c.tokens[76] == EOS_ID for c in chunks)
    assert chunks[0].tokens[1:76] == flat[:75]
    second = min(75, len(flat) - 75)
    assert chunks[1].tokens[1:1 + second] == flat[75:75 + second]


def test_chunk_is_cut_after_a_comma_near_the_limit(tokenizer):
    prompt = "cat " * 70 + ", dog dog dog dog dog dog dog dog"
    chunks = tokenize_chunks(tokenizer, prompt)
    first = chunks[0].tokens
    comma = first.index(COMMA_ID)
    assert comma == 71 and first[comma + 1:] == [EOS_ID] * (77 - comma - 1)   # rest moved to the next chunk
    assert chunks[1].tokens[1:9] == tokenizer.encode("dog " * 8)


def test_break_starts_a_new_chunk(tokenizer):
    chunks = tokenize_chunks(tokenizer, "a cat BREAK a dog")
    assert len(chunks) == 2
    assert chunks[0].tokens[1:3] == tokenizer.encode("a cat") and chunks[0].tokens[3] == EOS_ID
    assert chunks[1].tokens[1:3] == tokenizer.encode("a dog")


def test_sd2_chunks_pad_with_zero_after_the_first_end(tokenizer):
    chunk = tokenize_chunks(CLIPTokenizer(pad_id=0), "a cat")[0]
    assert chunk.tokens[:4] == [BOS_ID, *tokenizer.encode("a cat"), EOS_ID] and set(chunk.tokens[4:]) == {0}


@pytest.fixture(scope="module")
def encoder():
    torch.manual_seed(0)
    ref = transformers.CLIPTextModel(transformers.CLIPTextConfig(**TINY_CLIP)).eval()
    ours = engine_twin(CLIPTextModel, CLIPTextConfig.from_dict(TINY_CLIP), ref)
    return ref, PromptEncoder(ours, CLIPTokenizer())


def test_plain_prompt_equals_the_text_encoder_output(encoder):
    ref, prompts = encoder
    ids = CLIPTokenizer()("a photo of a cat")
    with torch.no_grad():
        expected = ref(ids).last_hidden_state
    torch.testing.assert_close(prompts("a photo of a cat"), expected, atol=1e-5, rtol=1e-5)


def test_emphasis_scales_tokens_then_restores_the_mean(encoder):
    ref, prompts = encoder
    tok = CLIPTokenizer()
    ids = tok("a red fox")
    with torch.no_grad():
        z = ref(ids).last_hidden_state
    weights = torch.ones(1, 77, 1)
    weights[0, 2] = 1.5   # "red"
    expected = z * weights
    expected = expected * (z.mean() / expected.mean())
    torch.testing.assert_close(prompts("a (red:1.5) fox"), expected, atol=1e-5, rtol=1e-5)


def test_clip_skip_uses_the_penultimate_layer(encoder):
    ref, prompts = encoder
    ids = CLIPTokenizer()("a cat")
    with torch.no_grad():
        hidden = ref(ids, output_hidden_states=True).hidden_states[-2]
        expected = ref.final_layer_norm(hidden)
    torch.testing.assert_close(prompts("a cat", clip_skip=2), expected, atol=1e-5, rtol=1e-5)


def test_long_prompts_concatenate_and_are_cached(encoder):
    _, prompts = encoder
    long = " ".join(["a red circle on a blue square"] * 15)
    z = prompts(long)
    assert z.shape == (1, 154, TINY_CLIP["hidden_size"])
    assert prompts(long) is z   # cached
    assert prompts(long, clip_skip=2) is not z
