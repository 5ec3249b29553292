"""M²-Encoder's bilingual tokenizer: Ant's GLM SentencePiece tokenizer (used by :mod:`lr0fm.models.m2_encoder_loader`).

Tokenizer (:class:`GlmTokenizer`): Ant's ``vlmo/tokenizer/tokenization_glm.py: GLMChineseTokenizer`` under the
transformers 4.17 its ``requirements.txt`` pins: runs of 2-10 spaces become ``<|blank_N|>``, SentencePiece
pieces -> ids, ``[CLS] ... <|endoftext|>``, truncation from the *left* (``truncation_side = "left"``) and
padding with ``<|endoftext|>`` to ``max_text_len`` = 52 (``vlmo/config.py``); special-token strings in the text
stay whole. A special token the SentencePiece model does not hold gets the next id after it, in transformers'
order (eos, unk excluded, cls, mask), as 4.17's ``sanitize_special_tokens`` gives it.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import torch

#: Where Ant publishes the tokenizer model.
SP_MODEL_URL = "https://github.com/alipay/Ant-Multi-Modal-Framework/raw/main/prj/M2_Encoder/vlmo/tokenizer/sp.model"

_SPECIALS = {"eos": "<|endoftext|>", "unk": "[UNK]", "cls": "[CLS]", "mask": "[MASK]"}


def encode_whitespaces(text: str) -> str:
    """Runs of 10 down to 2 spaces -> ``<|blank_N|>`` (``tokenization_glm.py``)."""
    for n in range(10, 1, -1):
        text = text.replace(" " * n, f"<|blank_{n}|>")
    return text


class GlmTokenizer:
    """Ant's ``GLMChineseTokenizer`` as M²-Encoder calls it: ``{"input_ids", "attention_mask"}``, 52 tokens.

    Args:
        model_file: the SentencePiece model (``sp.model``).
        max_length: padded and truncated length (``max_text_len``).

    Raises:
        ValueError: the file is not a SentencePiece model.

    """

    def __init__(self, model_file: str | Path, max_length: int = 52) -> None:
        import sentencepiece as spm

        self.model_file = str(model_file)
        self.max_length = int(max_length)
        self.sp = spm.SentencePieceProcessor()
        try:
            self.sp.Load(self.model_file)
        except (OSError, RuntimeError) as err:
            raise ValueError(
                f"{self.model_file!r} is not a SentencePiece model ({err}); expected M2-Encoder's sp.model "
                f"({SP_MODEL_URL})."
            ) from err
        self.special_ids = self._special_ids()

    def _special_ids(self) -> dict[str, int]:
        """Ids of the special tokens: the piece's id, else appended after the vocabulary (transformers 4.17)."""
        unk_id = self.sp.PieceToId(_SPECIALS["unk"])
        ids, next_id = {}, self.sp.GetPieceSize()
        for name in ("eos", "unk", "cls", "mask"):
            token = _SPECIALS[name]
            piece_id = self.sp.PieceToId(token)
            if name != "unk" and piece_id == unk_id:
                piece_id, next_id = next_id, next_id + 1
            ids[token] = piece_id
        return ids

    def __len__(self) -> int:
        """Vocabulary size with the added special tokens."""
        return max(self.sp.GetPieceSize(), max(self.special_ids.values()) + 1)

    def encode(self, text: str) -> list[int]:
        """Token ids of ``text`` without ``[CLS]``/``<|endoftext|>``: special strings whole, the rest SentencePiece."""
        specials = sorted(self.special_ids, key=len, reverse=True)
        parts = re.split("(" + "|".join(map(re.escape, specials)) + ")", text)
        ids: list[int] = []
        for i, part in enumerate(parts):
            if part in self.special_ids:
                ids.append(self.special_ids[part])
                continue
            # transformers strips the whitespace next to a special token
            if i > 0:
                part = part.lstrip()
            if i < len(parts) - 1:
                part = part.rstrip()
            if part:
                ids.extend(self.sp.PieceToId(p) for p in self.sp.EncodeAsPieces(encode_whitespaces(part)))
        return ids

    def __call__(self, texts: list[str]) -> Any:
        """``padding="max_length", truncation=True`` (from the left), as Ant's ``M2EncoderExecutor``.

        Returns:
            A ``BatchEncoding`` of ``input_ids`` and ``attention_mask`` (``[len(texts), max_length]``).

        """
        from transformers import BatchEncoding

        cls, eos = self.special_ids[_SPECIALS["cls"]], self.special_ids[_SPECIALS["eos"]]
        rows, masks = [], []
        for text in texts:
            ids = self.encode(text)
            ids = [cls, *ids[max(0, len(ids) - (self.max_length - 2)) :], eos]  # truncation_side = "left"
            masks.append([1] * len(ids) + [0] * (self.max_length - len(ids)))
            rows.append(ids + [eos] * (self.max_length - len(ids)))
        return BatchEncoding({"input_ids": torch.tensor(rows, dtype=torch.long), "attention_mask": torch.tensor(masks)})
