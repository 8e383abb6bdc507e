"""A word-level tokenizer for the bundled demo CLIP, whose text tower knows only a few dozen words.

Token ids: 0 pad, 1 start, 2 unknown, then the vocabulary in file order, and the end token last, because
open_clip's text tower pools at the largest id of each row (`pool_type="argmax"`).
"""
from __future__ import annotations

import re
from pathlib import Path

import torch

PAD, START, UNKNOWN = 0, 1, 2


class WordTokenizer:
    def __init__(self, words: list[str], context_length: int):
        self.index = {word: i + 3 for i, word in enumerate(words)}
        self.end = len(words) + 3
        self.vocab_size = self.end + 1
        self.context_length = context_length

    @classmethod
    def from_file(cls, path: Path, context_length: int) -> "WordTokenizer":
        return cls([w for w in path.read_text().split() if w], context_length)

    def unknown_words(self, text: str) -> list[str]:
        return [w for w in re.findall(r"[a-z]+", text.lower()) if w not in self.index]

    def encode(self, text: str) -> list[int]:
        ids = [self.index.get(w, UNKNOWN) for w in re.findall(r"[a-z]+", text.lower())]
        return [START] + ids[: self.context_length - 2] + [self.end]

    def __call__(self, texts: str | list[str]) -> torch.Tensor:
        texts = [texts] if isinstance(texts, str) else texts
        out = torch.full((len(texts), self.context_length), PAD, dtype=torch.long)
        for row, text in enumerate(texts):
            ids = self.encode(text)
            out[row, : len(ids)] = torch.tensor(ids)
        return out
