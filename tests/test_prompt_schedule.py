"""Prompt editing, alternation and AND: A1111's schedules for the examples its prompt parser documents, and the
pipeline switching the conditioning at those model calls."""
import numpy as np
import pytest
import torch

from engine.prompt_schedule import prompt_schedule, split_and, text_at
from engine.sampling import Conditioning, Denoiser, DiscreteSchedule
from tests.test_pipeline import arrays, pipe, request  # noqa: F401  (pipe: a fixture)

ALTERNATING = [(1, "a"), (2, "(b:1.1)"), (3, "a"), (4, "(b:1.1)"), (5, "a"), (6, "(b:1.1)"), (7, "a"), (8, "(b:1.1)"),
               (9, "a"), (10, "(b:1.1)")]
A1111_EXAMPLES = [   # A1111 1.10's prompt_parser docstring, 10 steps: (prompt, expected schedule)
    ("test", [(10, "test")]),
    ("a [b:3]", [(3, "a "), (10, "a b")]),
    ("a [b: 3]", [(3, "a "), (10, "a b")]),
    ("a [[[b]]:2]", [(2, "a "), (10, "a [[b]]")]),
    ("[(a:2):3]", [(3, ""), (10, "(a:2)")]),
    ("a [b : c : 1] d", [(1, "a b  d"), (10, "a  c  d")]),
    ("a[b:[c:d:2]:1]e", [(1, "abe"), (2, "ace"), (10, "ade")]),
    ("a [unbalanced", [(10, "a [unbalanced")]),
    ("a [b:.5] c", [(5, "a  c"), (10, "a b c")]),
    ("a [{b|d{:.5] c", [(5, "a  c"), (10, "a {b|d{ c")]),
    ("((a][:b:c [d:3]", [(3, "((a][:b:c "), (10, "((a][:b:c d")]),
    ("[a|(b:1.1)]", ALTERNATING),
    ("[fe|]male", [(i, "female" if i % 2 else "male") for i in range(1, 11)]),
    ("[fe|||]male", [(i, "female" if i % 4 == 1 else "male") for i in range(1, 11)]),
]


@pytest.mark.parametrize("prompt,expected", A1111_EXAMPLES)
def test_a1111s_documented_schedules(prompt, expected):
    assert prompt_schedule(prompt, 10) == expected


def test_the_hires_pass_counts_on_from_the_first():
    assert prompt_schedule("a [b:.5] c", 10, first_pass_steps=10) == [(10, "a b c")]   # the switch was in pass 1
    assert prompt_schedule("a [b:1.5] c", 10, first_pass_steps=10) == [(5, "a  c"), (10, "a b c")]
    assert prompt_schedule("a [b:13] c", 10, first_pass_steps=10) == [(3, "a  c"), (10, "a b c")]


def test_a1111s_landscape_example_at_100_steps():
    prompt = ("fantasy landscape with a [mountain:lake:0.25] and [an oak:a christmas tree:0.75][ in foreground::0.6]"
              "[ in background:0.25] [shoddy:masterful:0.5]")
    assert prompt_schedule(prompt, 100) == [
        (25, "fantasy landscape with a mountain and an oak in foreground shoddy"),
        (50, "fantasy landscape with a lake and an oak in foreground in background shoddy"),
        (60, "fantasy landscape with a lake and an oak in foreground in background masterful"),
        (75, "fantasy landscape with a lake and an oak in background masterful"),
        (100, "fantasy landscape with a lake and a christmas tree in background masterful")]


def test_each_call_takes_the_first_entry_not_yet_past():
    schedule = [(2, "red"), (5, "blue")]
    assert [text_at(schedule, call) for call in range(6)] == ["red", "red", "red", "blue", "blue", "blue"]


def test_and_splits_with_weights():
    assert split_and("a cat AND a dog :0.5 AND a hat:-1") == [("a cat", 1.0), (" a dog", 0.5), (" a hat", -1.0)]
    assert split_and("ANDROID") == [("ANDROID", 1.0)]


class Recording(torch.nn.Module):
    """The UNet, remembering the context of each call."""

    def __init__(self, unet):
        super().__init__()
        self.inner, self.contexts = unet, []
        self.config, self.dtype = unet.config, unet.dtype

    def forward(self, sample, t, context, **kwargs):
        self.contexts.append(context[:1].clone())
        return self.inner(sample, t, context, **kwargs)


def test_an_edit_switches_the_conditioning_at_its_step_and_each_text_is_encoded_once(pipe):
    unet, encoded = pipe.unet, []
    original = pipe.prompts.encode_chunk

    def counting(tower, chunk, clip_skip):
        encoded.append(1)
        return original(tower, chunk, clip_skip)
    pipe.unet, pipe.prompts.encode_chunk = Recording(unet), counting
    pipe.prompts.clear()
    try:
        pipe.generate(request(prompt="a [red:blue:2] circle", steps=5, sampler="Euler", cfg_scale=1))
        red, blue = (pipe.prompts.encode(t)[0] for t in ("a red circle", "a blue circle"))
        used = pipe.unet.contexts
        assert len(used) == 5 and len(encoded) == 2                     # two texts, each encoded once
        assert all(torch.equal(c, red) for c in used[:3]) and all(torch.equal(c, blue) for c in used[3:])
        pipe.unet.contexts.clear()
        pipe.generate(request(prompt="a [red:blue:4] circle", steps=3, sampler="Heun", cfg_scale=1))
        used = pipe.unet.contexts                                       # Heun: 2 x 3 - 1 = 5 calls, as A1111
        assert len(used) == 5 and all(torch.equal(c, red) for c in used[:5])
        pipe.unet.contexts.clear()
        pipe.generate(request(prompt="a [red|blue] circle", steps=4, sampler="Euler", cfg_scale=1))
        assert [torch.equal(c, red) for c in pipe.unet.contexts] == [True, True, False, True]
    finally:
        pipe.unet, pipe.prompts.encode_chunk = unet, original


def test_and_is_composable_diffusion_as_a1111_combines_it(pipe):
    torch.manual_seed(0)
    x, sigma = torch.randn(1, 4, 8, 8), torch.tensor([3.0])
    encode = lambda text: pipe.prompts.encode(text)[0]   # noqa: E731
    a, b, u = encode("a red circle"), encode("a blue square"), encode("")
    denoiser = Denoiser(pipe.unet, DiscreteSchedule())
    composed = denoiser(x, sigma, Conditioning(a, u, parts=[(a, None, 1.0), (b, None, 0.5)]), 7.0)
    d_a, d_b, d_u = (denoiser(x, sigma, Conditioning(c)) for c in (a, b, u))
    torch.testing.assert_close(composed, d_u + 7.0 * ((d_a - d_u) + 0.5 * (d_b - d_u)), atol=1e-5, rtol=1e-5)
    plain = arrays(pipe.generate(request(prompt="a red circle", negative_prompt="")))[0]
    silent = arrays(pipe.generate(request(prompt="a red circle AND a blue square:0", negative_prompt="")))[0]
    mixed = arrays(pipe.generate(request(prompt="a red circle AND a blue square", negative_prompt="")))[0]
    assert np.abs(plain - silent).max() <= 1 and np.abs(plain - mixed).max() > 5
