"""Textual inversion: A1111's embedding files, their vectors in place of the name's tokens, TI hashes."""
import torch
from safetensors.torch import save_file

from engine.embeddings import EmbeddingLibrary
from engine.infotext import parse_infotext
from engine.prompts import tokenize_chunks, embedding_vocabulary
from tests.test_pipeline import pipe, request  # noqa: F401  (pipe: a fixture)

WIDTH = 64          # the tiny test text encoder's


def write_embeddings(folder):
    folder.mkdir(exist_ok=True)
    torch.manual_seed(0)
    a1111 = torch.randn(2, WIDTH)
    torch.save({"string_to_token": {"*": 265}, "string_to_param": {"*": a1111}, "name": "shiny-style", "step": 800},
               folder / "shiny-style.pt")
    one = torch.randn(1, WIDTH)
    save_file({"emb_params": one}, folder / "glowing.safetensors")
    save_file({"clip_l": torch.randn(1, 768), "clip_g": torch.randn(1, 1280)}, folder / "xl-only.safetensors")
    torch.save({"string_to_param": {"*": torch.zeros(1, WIDTH)}, "hook": torch.nn.ReLU()}, folder / "evil.pt")
    return a1111, one


def test_a1111_files_are_read_and_another_familys_skipped(tmp_path):
    a1111, one = write_embeddings(tmp_path / "embeddings")
    library = EmbeddingLibrary(tmp_path / "embeddings")
    usable, skipped = library.usable([WIDTH])
    assert sorted(usable) == ["glowing", "shiny-style"] and torch.equal(usable["shiny-style"][0], a1111)
    assert "another model family" in skipped["xl-only"] and "refused" in skipped["evil"]
    assert sorted(library.usable([768, 1280])[0]) == ["xl-only"]                       # SDXL takes clip_l + clip_g
    assert library.embeddings()[0]["shiny-style"].step == 800


def test_the_vectors_take_the_names_places_in_the_prompt_and_negative_prompt(pipe, tmp_path):
    a1111, one = write_embeddings(tmp_path / "embeddings")
    library = EmbeddingLibrary(tmp_path / "embeddings")
    tokenizer, encoder = pipe.prompts.tokenizer, pipe.prompts.text_encoder
    vocabulary = embedding_vocabulary(tokenizer, {n: p[0] for n, p in library.usable([WIDTH])[0].items()})
    chunk, = tokenize_chunks(tokenizer, "a cat, shiny-style, (glowing:1.2)", vocabulary)
    prefix = len(tokenizer.encode("a cat, ")) + 1                                      # + the start token
    assert [(at, name) for at, name, _ in chunk.fixes] == [(prefix, "shiny-style"), (prefix + 3, "glowing")]
    assert chunk.tokens[prefix:prefix + 2] == [0, 0] and chunk.multipliers[prefix + 3] == 1.2
    ids = torch.tensor([chunk.tokens])
    with torch.no_grad():
        inputs = encoder.embeddings(ids, [(at, v) for at, _, v in chunk.fixes])
        positions = encoder.embeddings.position_embedding.weight
        torch.testing.assert_close(inputs[0, prefix:prefix + 2], a1111 + positions[prefix:prefix + 2])
        torch.testing.assert_close(inputs[0, prefix + 3], one[0] + positions[prefix + 3])
        plain = encoder.embeddings(ids)                          # the other places are untouched
        assert torch.equal(inputs[0, :prefix], plain[0, :prefix])
    before = pipe.prompts.encode("a cat, shiny-style")[0]
    pipe.prompts.embeddings = library
    try:
        with_vectors = pipe.prompts.encode("a cat, shiny-style")[0]
        assert (with_vectors - before).abs().max() > 1e-3
        run = pipe.generate(request(prompt="a cat, shiny-style", negative_prompt="glowing, xl-only"))
        hashes = parse_infotext(run.infotexts[0])["TI hashes"]
        assert hashes == f"glowing: {library.embeddings()[0]['glowing'].shorthash}, " \
                         f"shiny-style: {library.embeddings()[0]['shiny-style'].shorthash}"
        assert pipe.prompts.embeddings_in("xl-only") == []           # skipped: left as words
    finally:
        pipe.prompts.embeddings = EmbeddingLibrary()
