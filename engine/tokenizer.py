"""CLIP's byte-pair tokenizer, built offline from the vocabulary file that open_clip_torch ships.

The vocabulary is rebuilt exactly as OpenAI's CLIP code builds it (256 byte symbols, their
end-of-word forms, 48,894 merges, then <|startoftext|> and <|endoftext|>), so ids equal those of
openai/clip-vit-large-patch14; the BPE itself runs in the `tokenizers` library with the pre-tokenizer transformers' CLIPTokenizer uses.
"""
import functools
import gzip
import html
import importlib.util
from pathlib import Path

import ftfy
import torch
from tokenizers import Regex, Tokenizer, normalizers, pre_tokenizers
from tokenizers.models import BPE

BOS_ID, EOS_ID = 49406, 49407
CONTEXT_LENGTH = 77
_MERGE_COUNT = 49152 - 256 - 2
# CLIP's word pattern: special tokens, English contractions, letter runs, single digits, symbol runs
_WORD_PATTERN = r"""<\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+"""


def vocabulary_file() -> Path:
    spec = importlib.util.find_spec("open_clip")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("open_clip_torch is not installed: it ships the CLIP vocabulary (pip install -r requirements.txt)")
    return Path(spec.submodule_search_locations[0]) / "bpe_simple_vocab_16e6.txt.gz"


def bytes_to_unicode() -> dict[int, str]:
    """GPT-2/CLIP's reversible map from bytes to printable unicode characters."""
    printable = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    codes = printable[:]
    extra = 0
    for b in range(256):
        if b not in printable:
            printable.append(b)
            codes.append(256 + extra)
            extra += 1
    return dict(zip(printable, map(chr, codes)))


@functools.lru_cache(maxsize=1)
def vocabulary() -> tuple[dict[str, int], list[tuple[str, str]]]:
    """(token -> id, BPE merges in priority order), exactly as OpenAI's CLIP builds them."""
    lines = gzip.open(vocabulary_file()).read().decode("utf-8").split("\n")
    merges = [tuple(line.split()) for line in lines[1:_MERGE_COUNT + 1]]
    symbols = list(bytes_to_unicode().values())
    symbols += [s + "</w>" for s in symbols]
    symbols += ["".join(m) for m in merges]
    symbols += ["<|startoftext|>", "<|endoftext|>"]
    return {s: i for i, s in enumerate(symbols)}, merges


@functools.lru_cache(maxsize=1)
def _backend() -> Tokenizer:
    vocab, merges = vocabulary()
    tokenizer = Tokenizer(BPE(vocab=vocab, merges=merges, continuing_subword_prefix="", end_of_word_suffix="</w>",
                              unk_token="<|endoftext|>"))
    tokenizer.normalizer = normalizers.Sequence([normalizers.NFC(), normalizers.Lowercase()])
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(_WORD_PATTERN), behavior="removed", invert=True),
        pre_tokenizers.ByteLevel(add_prefix_space=False),
    ])
    return tokenizer


def clean(text: str) -> str:
    """OpenAI CLIP's basic_clean + whitespace_clean (the backend lowercases)."""
    text = ftfy.fix_text(text)
    text = html.unescape(html.unescape(text))
    return " ".join(text.split())


class CLIPTokenizer:
    """Text -> CLIP token ids. `pad_id` is 49407 (end-of-text) for SD1.x and 0 for SD2.x's OpenCLIP."""

    def __init__(self, pad_id: int = EOS_ID, context_length: int = CONTEXT_LENGTH):
        self.pad_id = pad_id
        self.context_length = context_length

    def encode(self, text: str) -> list[int]:
        """BPE ids of `text` without start/end tokens and without truncation."""
        return _backend().encode(clean(text), add_special_tokens=False).ids

    def __call__(self, texts: str | list[str]) -> torch.Tensor:
        """(batch, 77) ids: start token, text (truncated), end token, padding."""
        texts = [texts] if isinstance(texts, str) else texts
        rows = []
        for text in texts:
            ids = [BOS_ID] + self.encode(text)[: self.context_length - 2] + [EOS_ID]
            rows.append(ids + [self.pad_id] * (self.context_length - len(ids)))
        return torch.tensor(rows, dtype=torch.long)
