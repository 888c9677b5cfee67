"""Token ids must equal openai/clip-vit-large-patch14's, with no file from a hub."""
import pytest
from open_clip.tokenizer import SimpleTokenizer

from engine.tokenizer import BOS_ID, EOS_ID, CLIPTokenizer

PROMPTS = [
    "a photo of an astronaut riding a horse on mars",
    "A Photo Of An ASTRONAUT",
    "masterpiece, best quality, (red fox:1.3), [blurry], \\(escaped\\)",
    "Café naïve façade, Ærøskøbing, Straße",
    "東京の夜景 and 🦊🌙 emoji",
    "1234567890 3.14159 1,000,000 2nd 21st",
    "don't, can't, you'll, I'm, they're, we've, he'd",
    "&amp; &lt;b&gt; html entities &quot;quoted&quot;",
    "tabs\tand\nnew   lines    collapse",
    "hyphen-ated under_score slash/and back\\slash @#$%^&*!?",
    "mojibake: cafÃ©",
    " ".join(["a red circle on a blue square"] * 12),   # well over 77 tokens
]


@pytest.fixture(scope="module")
def openai_reference():
    """OpenAI's original CLIP tokenizer code (as open_clip keeps it): an independent implementation."""
    return SimpleTokenizer()


def test_known_ids_of_the_astronaut_prompt():
    ids = CLIPTokenizer()("a photo of an astronaut riding a horse on mars")
    expected = [49406, 320, 1125, 539, 550, 18376, 6765, 320, 4558, 525, 7496, 49407]
    assert ids.shape == (1, 77)
    assert ids[0, :12].tolist() == expected
    assert ids[0, 12:].tolist() == [49407] * 65


@pytest.mark.parametrize("prompt", PROMPTS)
def test_ids_equal_openai_clip(prompt, openai_reference):
    assert CLIPTokenizer().encode(prompt) == openai_reference.encode(prompt)


def test_long_prompt_is_truncated_with_end_token():
    text = PROMPTS[-1]
    tok = CLIPTokenizer()
    assert len(tok.encode(text)) > 75
    row = tok(text)[0].tolist()
    assert len(row) == 77 and row[0] == BOS_ID and row[-1] == EOS_ID
    assert row[1:76] == tok.encode(text)[:75]


def test_sd2_pads_with_zero_and_batches():
    ids = CLIPTokenizer(pad_id=0)(["a cat", "a dog on a sofa"])
    assert ids.shape == (2, 77)
    assert ids[0, :4].tolist() == [BOS_ID, 320, 2368, EOS_ID]
    assert ids[0, 4:].eq(0).all()
