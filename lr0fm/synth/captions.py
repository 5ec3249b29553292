"""Read a caption file, sample captions reproducibly and keep the chosen list in ``captions.tsv``."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from lr0fm.atomic import write_text_atomic
from lr0fm.synth.config import SynthError, writing
from lr0fm.synth.seeds import caption_rank_key

#: Name of the caption list inside the output directory.
CAPTIONS_FILE = "captions.tsv"
#: ``--captions`` names of the packaged caption sets of the LR0.FM authors (``lr0fm/resources/captions``).
PAPER_CAPTION_SETS = ("paper", "paper-2k")
_PACKAGED = Path(__file__).resolve().parents[1] / "resources" / "captions"
_HEADER = "caption_id\tsource_line\tcaption"


@dataclass(frozen=True)
class Caption:
    """One chosen caption.

    Attributes:
        caption_id: its id in the output (folder ``images/<caption_id:05d>``).
        source_line: 1-based line number in the caption file it came from.
        text: the caption.

    """

    caption_id: int
    source_line: int
    text: str


def paper_captions(name: str = "paper") -> list[tuple[int, str]]:
    """The LR0.FM authors' captions as ``(1-based position, text)``, exactly as their training code reads them.

    ``paper``: the 7,000 of ``caption_2k.txt`` (``readlines()[:-1]``, dropping its closing one-space line)
    followed by ``caption_5k.txt``, each ``strip()``-ed (``EVA/EVA-CLIP/rei/training/data_train.py``), so
    position ``i`` is their caption label ``i - 1``; ``paper-2k``: the first 2,000 (the 2K ablation).

    Raises:
        SynthError: unknown name.

    """
    if name not in PAPER_CAPTION_SETS:
        raise SynthError(f"unknown caption set {name!r}; expected one of {', '.join(PAPER_CAPTION_SETS)}")
    with (_PACKAGED / "caption_2k.txt").open(encoding="utf-8") as handle:
        lines = handle.readlines()[:-1]
    if name == "paper":
        with (_PACKAGED / "caption_5k.txt").open(encoding="utf-8") as handle:
            lines += handle.readlines()
    return [(number, line.strip()) for number, line in enumerate(lines, start=1)]


def read_caption_file(path: str | Path) -> list[tuple[int, str]]:
    """Non-empty captions of a file as ``(1-based line number, text)``.

    Plain text files hold one caption per line; Conceptual Captions TSV files hold
    ``caption<TAB>url`` per line, of which only the caption is kept. ``paper`` and ``paper-2k`` name the
    packaged captions of the LR0.FM authors (:func:`paper_captions`).

    Raises:
        SynthError: if the file is missing, not UTF-8 or holds no caption.

    """
    if str(path) in PAPER_CAPTION_SETS and not Path(path).exists():
        return paper_captions(str(path))
    path = Path(path)
    if not path.is_file():
        raise SynthError(
            f"caption file {str(path)!r} does not exist. Pass --captions FILE with one caption per line "
            "or a Conceptual Captions TSV (caption<TAB>url)."
        )
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError as exc:
        raise SynthError(f"caption file {str(path)!r} is not UTF-8 text: {exc}") from exc
    captions = []
    for number, line in enumerate(lines, start=1):
        text = " ".join(line.split("\t", 1)[0].split())
        if text:
            captions.append((number, text))
    if not captions:
        raise SynthError(
            f"caption file {str(path)!r} holds no caption (it is empty or only blank lines). Expected one "
            "caption per line, or caption<TAB>url per line for Conceptual Captions."
        )
    return captions


def sample_captions(captions: list[tuple[int, str]], num_captions: int | None, seed: int) -> list[Caption]:
    """Choose captions reproducibly, without replacement.

    The lines are ordered by a hash of ``(seed, line number)`` and the first ``num_captions`` are
    kept, so the choice depends only on the file and the seed, and asking for more captions later
    extends the earlier choice (same ids for the captions already chosen).

    Args:
        captions: ``(line number, text)`` pairs from :func:`read_caption_file`.
        num_captions: how many to keep; ``None`` keeps all of them in file order.
        seed: the sampling seed.

    Raises:
        SynthError: if more captions are asked for than the file holds.

    """
    if num_captions is None:
        chosen = captions
    elif num_captions > len(captions):
        raise SynthError(
            f"--num-captions {num_captions} asks for more captions than the caption file holds "
            f"({len(captions)} non-empty lines); lower it or use a larger caption file."
        )
    else:
        chosen = sorted(captions, key=lambda item: caption_rank_key(seed, item[0]))[:num_captions]
    return [Caption(cid, line, text) for cid, (line, text) in enumerate(chosen)]


def format_captions(captions: list[Caption]) -> str:
    """Render ``captions.tsv`` (header, then ``caption_id<TAB>source_line<TAB>caption``)."""
    rows = [f"{c.caption_id}\t{c.source_line}\t{c.text}" for c in captions]
    return "\n".join([_HEADER, *rows]) + "\n"


def load_captions_tsv(path: str | Path) -> list[Caption]:
    """Read a ``captions.tsv`` written by :func:`write_captions_tsv`.

    Raises:
        SynthError: if the file does not have the expected header and three tab-separated columns.

    """
    lines = Path(path).read_text(encoding="utf-8").splitlines()
    if not lines or lines[0] != _HEADER:
        raise SynthError(f"{str(path)!r} is not a synth caption list: expected the header {_HEADER!r}.")
    captions = []
    for number, line in enumerate(lines[1:], start=2):
        parts = line.split("\t", 2)
        if len(parts) != 3 or not parts[0].isdigit() or not parts[1].isdigit():
            raise SynthError(f"{str(path)!r} line {number} is not caption_id<TAB>source_line<TAB>caption.")
        captions.append(Caption(int(parts[0]), int(parts[1]), parts[2]))
    return captions


def write_captions_tsv(output: str | Path, captions: list[Caption]) -> Path:
    """Write (or check) ``output/captions.tsv``, atomically.

    A list left by an earlier run may be a prefix of this one (it is extended) or extend it (it is
    kept); anything else means the output directory belongs to other captions or another seed.

    Raises:
        SynthError: if the directory already holds a different caption list.

    """
    path = Path(output) / CAPTIONS_FILE
    if path.exists():
        existing = load_captions_tsv(path)
        if captions == existing[: len(captions)]:
            return path
        if existing != captions[: len(existing)]:
            raise SynthError(
                f"{str(path)!r} lists other captions than this run chose (different caption file, "
                "--seed or --num-captions). Use a new --output directory, or rerun with the settings "
                "that made it."
            )
    with writing(path):
        return write_text_atomic(path, format_captions(captions))
