"""A word-level tokenizer over the closed toy vocabulary, consistent with open_clip's text pooling.

open_clip's text tower (``pool_type="argmax"``) pools the features at the position of the *largest*
token id of each sequence, the CLIP end-of-text convention. The tokenizer therefore gives ``<eot>`` the
largest id, ``<pad>`` id 0 (open_clip's default ``pad_id``) and ``<sot>`` id 1.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path

import torch

from lr0fm.toy.captions import fixed_words
from lr0fm.toy.world import ATTRIBUTES

PAD, SOT, EOT = "<pad>", "<sot>", "<eot>"


def toy_words() -> list[str]:
    """All words captions and prompts of the toy world can contain (sorted, without special tokens)."""
    words = fixed_words()
    for vocab in ATTRIBUTES.values():
        words.update(vocab)
    return sorted(words)


class ToyTokenizer:
    """Callable word-level tokenizer: ``list[str] -> LongTensor [N, context_length]``.

    Text is lower-cased, punctuation other than letters and spaces is dropped, and each sequence is
    ``<sot> w1 ... wk <eot> <pad>...``; sequences longer than ``context_length`` are truncated with
    ``<eot>`` kept as the last token.

    Args:
        words: the vocabulary (special tokens are added around it).
        context_length: length of every token row.

    """

    def __init__(self, words: Iterable[str], context_length: int = 16) -> None:
        words = [w for w in words if w not in (PAD, SOT, EOT)]
        if len(set(words)) != len(words):
            raise ValueError("toy tokenizer vocabulary contains duplicate words")
        if context_length < 3:
            raise ValueError(f"context_length must be at least 3 (<sot> word <eot>), got {context_length}")
        self.vocab: list[str] = [PAD, SOT, *words, EOT]
        self.index = {w: i for i, w in enumerate(self.vocab)}
        self.context_length = context_length

    @property
    def vocab_size(self) -> int:
        """Number of token ids (the text tower's embedding table size)."""
        return len(self.vocab)

    @property
    def eot_id(self) -> int:
        """Id of ``<eot>``: the largest id, as open_clip's argmax pooling requires."""
        return len(self.vocab) - 1

    def words_of(self, text: str) -> list[str]:
        """Split ``text`` into vocabulary words; raises ``ValueError`` naming unknown words."""
        cleaned = "".join(ch if ch.isalpha() or ch.isspace() else " " for ch in text.lower())
        words = cleaned.split()
        unknown = sorted({w for w in words if w not in self.index})
        if unknown:
            raise ValueError(
                f"words {unknown} are not in the toy vocabulary of {len(self.vocab) - 3} words "
                f"(e.g. {', '.join(self.vocab[2:8])}, ...); toy prompts may only use toy-world words"
            )
        return words

    def __call__(self, texts: str | list[str]) -> torch.Tensor:
        """Tokenise one text or a list of texts to a LongTensor ``[N, context_length]``."""
        if isinstance(texts, str):
            texts = [texts]
        out = torch.full((len(texts), self.context_length), self.index[PAD], dtype=torch.long)
        for row, text in enumerate(texts):
            ids = [self.index[w] for w in self.words_of(text)][: self.context_length - 2]
            ids = [self.index[SOT], *ids, self.eot_id]
            out[row, : len(ids)] = torch.tensor(ids)
        return out

    def decode(self, tokens: torch.Tensor) -> list[str]:
        """Inverse of ``__call__`` (special tokens dropped)."""
        specials = {self.index[PAD], self.index[SOT], self.eot_id}
        return [" ".join(self.vocab[i] for i in row.tolist() if i not in specials) for row in tokens]

    def save(self, path: str | Path) -> None:
        """Write the vocabulary and context length as JSON."""
        payload = {"vocab": self.vocab, "context_length": self.context_length}
        Path(path).write_text(json.dumps(payload, indent=1))

    @classmethod
    def load(cls, path: str | Path) -> ToyTokenizer:
        """Read a tokenizer written by :meth:`save`."""
        payload = json.loads(Path(path).read_text())
        vocab = payload["vocab"]
        if vocab[:2] != [PAD, SOT] or vocab[-1] != EOT:
            raise ValueError(f"{path}: not a toy tokenizer file (expected vocab [<pad>, <sot>, ..., <eot>])")
        return cls(vocab[2:-1], context_length=int(payload["context_length"]))

    @classmethod
    def default(cls, context_length: int = 16) -> ToyTokenizer:
        """Build the tokenizer over :func:`toy_words`."""
        return cls(toy_words(), context_length)
