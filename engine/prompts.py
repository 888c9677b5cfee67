"""A1111's prompt syntax: attention weights, 75-token chunks, BREAK, emphasis, clip skip.

`(word)` x1.1, `((word))` x1.21, `(word:1.3)` x1.3, `[word]` /1.1, `\\(` a literal bracket, `BREAK`
starts a new chunk. Prompts longer than 75 tokens are split into 77-token chunks (start, 75 tokens,
end), cut after a comma when one is within 20 tokens of the limit, encoded one by one and concatenated.
Each token's hidden state is scaled by its weight and the chunk's mean restored ("Original" emphasis).

SDXL has two text towers (CLIP ViT-L and OpenCLIP bigG; the refiner only bigG), as A1111 runs them: each
chunk goes through every tower with its own padding, each tower's output is weighted on its own, and the
outputs are concatenated along the width (768 + 1280 = 2048). Each tower gives its penultimate layer
as it is, SGM's "penultimate" (clip skip 1; clip skip n goes n - 1 layers further back); the pooled text
embedding is bigG's projection of the first chunk, unweighted.
"""
import re
from collections import OrderedDict
from dataclasses import dataclass, field

import torch

from .embeddings import EmbeddingLibrary
from .tokenizer import BOS_ID, EOS_ID, CLIPTokenizer

CHUNK_LENGTH = 75
COMMA_ID = 267              # ",</w>"
COMMA_BACKTRACK = 20        # A1111's default "comma_padding_backtrack"

_ATTENTION = re.compile(r"""
\\\(|\\\)|\\\[|\\]|\\\\|\\|\(|\[|:([+-]?[.\d]+)\)|\)|]|[^\\()\[\]:]+|:
""", re.X)
_BREAK = re.compile(r"\s*\bBREAK\b\s*", re.S)


def parse_prompt_attention(text: str) -> list[list]:
    """[[text, weight], ...] with runs of equal weight merged; BREAK appears as ["BREAK", -1]."""
    res, round_brackets, square_brackets = [], [], []

    def multiply_range(start, multiplier):
        for p in range(start, len(res)):
            res[p][1] *= multiplier

    for m in _ATTENTION.finditer(text):
        piece, weight = m.group(0), m.group(1)
        if piece.startswith("\\"):
            res.append([piece[1:], 1.0])
        elif piece == "(":
            round_brackets.append(len(res))
        elif piece == "[":
            square_brackets.append(len(res))
        elif weight is not None and round_brackets:
            multiply_range(round_brackets.pop(), float(weight))
        elif piece == ")" and round_brackets:
            multiply_range(round_brackets.pop(), 1.1)
        elif piece == "]" and square_brackets:
            multiply_range(square_brackets.pop(), 1 / 1.1)
        else:
            for i, part in enumerate(_BREAK.split(piece)):
                if i > 0:
                    res.append(["BREAK", -1])
                res.append([part, 1.0])
    for pos in round_brackets:
        multiply_range(pos, 1.1)
    for pos in square_brackets:
        multiply_range(pos, 1 / 1.1)
    if not res:
        res = [["", 1.0]]
    i = 0
    while i + 1 < len(res):
        if res[i][1] == res[i + 1][1]:
            res[i][0] += res[i + 1][0]
            res.pop(i + 1)
        else:
            i += 1
    return res


@dataclass
class PromptChunk:
    tokens: list[int] = field(default_factory=list)
    multipliers: list[float] = field(default_factory=list)
    fixes: list[tuple[int, str, torch.Tensor]] = field(default_factory=list)   # (position, embedding, vectors)


Vocabulary = dict[tuple[int, ...], tuple[str, torch.Tensor]]   # an embedding name's token ids -> (name, vectors)


def _embedding_at(tokens: list[int], position: int, vocabulary: Vocabulary) -> tuple[int, str, torch.Tensor] | None:
    """The longest embedding name whose tokens start at `position`: (its token count, name, vectors)."""
    for ids, (name, vectors) in vocabulary.items():       # longest names first (see embedding_vocabulary)
        if tuple(tokens[position:position + len(ids)]) == ids:
            return len(ids), name, vectors
    return None


def tokenize_chunks(tokenizer: CLIPTokenizer, text: str, vocabulary: Vocabulary | None = None) -> list[PromptChunk]:
    """The prompt as 77-token chunks with per-token weights, as A1111's tokenize_line builds them; where an
    embedding's name appears, its n vectors take n token places (never split between chunks)."""
    parsed = parse_prompt_attention(text)
    chunks, chunk, last_comma = [], PromptChunk(), -1

    def next_chunk():
        nonlocal chunk, last_comma
        pad = CHUNK_LENGTH - len(chunk.tokens)
        tokens = [BOS_ID] + chunk.tokens + [EOS_ID] * (pad + 1)
        if tokenizer.pad_id != EOS_ID:   # SD2: only the first end token stays, the rest is padding
            end = tokens.index(EOS_ID)
            tokens = tokens[: end + 1] + [tokenizer.pad_id] * (len(tokens) - end - 1)
        chunks.append(PromptChunk(tokens, [1.0] + chunk.multipliers + [1.0] * (pad + 1),
                                  [(at + 1, name, v) for at, name, v in chunk.fixes]))
        chunk, last_comma = PromptChunk(), -1

    for piece, weight in parsed:
        if piece == "BREAK" and weight == -1:
            next_chunk()
            continue
        ids, position = tokenizer.encode(piece), 0
        while position < len(ids):
            found = _embedding_at(ids, position, vocabulary) if vocabulary else None
            if found is not None:
                length, name, vectors = found
                if len(chunk.tokens) + len(vectors) > CHUNK_LENGTH:
                    next_chunk()
                chunk.fixes.append((len(chunk.tokens), name, vectors))
                chunk.tokens += [0] * len(vectors)
                chunk.multipliers += [weight] * len(vectors)
                position += length
                continue
            token = ids[position]
            position += 1
            if token == COMMA_ID:
                last_comma = len(chunk.tokens)
            elif (len(chunk.tokens) == CHUNK_LENGTH and last_comma != -1
                  and len(chunk.tokens) - last_comma <= COMMA_BACKTRACK):
                cut = last_comma + 1
                moved = PromptChunk(chunk.tokens[cut:], chunk.multipliers[cut:],
                                    [(at - cut, n, v) for at, n, v in chunk.fixes if at >= cut])
                chunk = PromptChunk(chunk.tokens[:cut], chunk.multipliers[:cut],
                                    [f for f in chunk.fixes if f[0] < cut])
                next_chunk()
                chunk = moved
            if len(chunk.tokens) == CHUNK_LENGTH:
                next_chunk()
            chunk.tokens.append(token)
            chunk.multipliers.append(weight)
    if chunk.tokens or not chunks:
        next_chunk()
    return chunks


def embedding_vocabulary(tokenizer: CLIPTokenizer, embeddings: dict[str, torch.Tensor]) -> Vocabulary:
    """Each embedding's name as the tokenizer reads it, longest first, so "style-two" wins over "style"."""
    found = {tuple(tokenizer.encode(name)): (name, vectors) for name, vectors in embeddings.items()}
    return dict(sorted(found.items(), key=lambda item: -len(item[0])))


@dataclass(frozen=True)
class TextTower:
    encoder: object                 # engine.models.CLIPTextModel
    tokenizer: CLIPTokenizer


class PromptEncoder:
    """Text -> (1, 77 * chunks, width) conditioning (and SDXL's pooled embedding), with an LRU cache."""

    def __init__(self, text_encoder, tokenizer: CLIPTokenizer, cache_size: int = 32,
                 second: TextTower | None = None, sdxl: bool = False):
        self.towers = [TextTower(text_encoder, tokenizer)] + ([second] if second else [])
        self.sdxl = sdxl
        self.cache_size = cache_size
        self._cache: OrderedDict = OrderedDict()
        self.embeddings: EmbeddingLibrary = EmbeddingLibrary()    # the app points it at embeddings/
        self._used: dict = {}                                     # cache key -> embedding names in that text

    @property
    def text_encoder(self):
        return self.towers[0].encoder

    @property
    def tokenizer(self) -> CLIPTokenizer:
        return self.towers[0].tokenizer

    @torch.no_grad()
    def encode_chunk(self, tower: TextTower, chunk: PromptChunk, clip_skip: int):
        """(weighted hidden states (1, 77, width), pooled projection or None) of one chunk in one tower."""
        device = tower.encoder.final_layer_norm.weight.device
        ids = torch.tensor([chunk.tokens], device=device)
        out = tower.encoder(ids, [(at, vectors.to(device)) for at, _, vectors in chunk.fixes])
        z = (tower.encoder.select(out, clip_skip + 1, final_norm=False) if self.sdxl
             else tower.encoder.select(out, clip_skip)).float()
        pooled = None if out.text_embeds is None else out.text_embeds.float()
        if all(m == 1.0 for m in chunk.multipliers):
            return z, pooled   # nothing to weight; also spares a 0/0 when the features average exactly zero
        weights = torch.tensor(chunk.multipliers, device=device)[None, :, None]
        original_mean = z.mean()
        z = z * weights
        new_mean = z.mean()
        return (z * (original_mean / new_mean) if new_mean != 0 else z), pooled

    def clear(self) -> None:
        """Forget cached encodings (the text encoder's weights changed)."""
        self._cache.clear()

    def __call__(self, text: str, clip_skip: int = 1) -> torch.Tensor:
        return self.encode(text, clip_skip)[0]

    def encode(self, text: str, clip_skip: int = 1) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(context (1, 77 * chunks, total width), pooled text embedding (1, dim) or None)."""
        key = (text, clip_skip, self.embeddings.stamp)
        if key in self._cache:
            self._cache.move_to_end(key)
            return self._cache[key]
        usable, _ = self.embeddings.usable([t.encoder.config.hidden_size for t in self.towers])
        widths, pooled, used = [], None, set()
        for i, tower in enumerate(self.towers):
            vocabulary = embedding_vocabulary(tower.tokenizer, {n: parts[i] for n, parts in usable.items()})
            chunks = tokenize_chunks(tower.tokenizer, text, vocabulary)
            used.update(name for c in chunks for _, name, _ in c.fixes)
            encoded = [self.encode_chunk(tower, c, clip_skip) for c in chunks]
            widths.append(torch.cat([z for z, _ in encoded], dim=1))
            pooled = encoded[0][1] if encoded[0][1] is not None else pooled
        found = (torch.cat(widths, dim=-1), pooled)
        self._cache[key], self._used[key] = found, sorted(used)
        if len(self._cache) > self.cache_size:
            self._used.pop(self._cache.popitem(last=False)[0], None)
        return found

    def embeddings_in(self, text: str, clip_skip: int = 1) -> list[str]:
        """The embeddings the encoding of `text` used (after `encode`)."""
        return self._used.get((text, clip_skip, self.embeddings.stamp), [])
