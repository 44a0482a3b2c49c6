"""WordNet nouns (Princeton WordNet 3.0 `data.noun`) as a retrieval task: gloss -> lemmas of its synset.

The files are read from a local WordNet dict directory; nothing is downloaded. On Debian/Ubuntu:
`apt-get install wordnet-base` (files in /usr/share/wordnet), or without root
`apt-get download wordnet-base && dpkg -x wordnet-base_*.deb DIR` (files in DIR/usr/share/wordnet).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

HYPERNYM_POINTERS = ("@", "@i")


@dataclass(frozen=True)
class WordNetRetrieval:
    """queries: one gloss per synset; corpus: every distinct lemma (underscores as spaces); positives[i]: corpus
    ids of synset i's lemmas; synsets: int64 [len(queries)] row of each query in WordNetNouns."""

    queries: list[str]
    corpus: list[str]
    positives: list[list[int]]
    synsets: np.ndarray


@dataclass(frozen=True)
class WordNetNouns:
    """Noun synsets in file order. offsets: int64 [S] WordNet synset offsets; lexnames: int64 [S] lexicographer
    file numbers; lemmas / glosses: per synset; hypernyms: per synset, the rows of its hypernyms (@ and @i)."""

    offsets: np.ndarray
    lexnames: np.ndarray
    lemmas: list[tuple[str, ...]]
    glosses: list[str]
    hypernyms: list[tuple[int, ...]]

    def __len__(self) -> int:
        return len(self.offsets)

    def co_hyponyms(self, row: int) -> list[int]:
        """Rows of the synsets sharing a hypernym with `row` (itself excluded): natural hard negatives, and the
        usual source of false negatives."""
        parents = set(self.hypernyms[row])
        return [r for r, hyper in enumerate(self.hypernyms) if r != row and parents.intersection(hyper)]

    def retrieval_task(self, rows: np.ndarray | None = None) -> WordNetRetrieval:
        """Queries from the synsets `rows` (default all); the corpus always holds every lemma."""
        rows = np.arange(len(self), dtype=np.int64) if rows is None else np.asarray(rows, dtype=np.int64)
        corpus = sorted({lemma for lemmas in self.lemmas for lemma in lemmas})
        ids = {lemma: i for i, lemma in enumerate(corpus)}
        positives = [sorted({ids[lemma] for lemma in self.lemmas[r]}) for r in rows]
        return WordNetRetrieval([self.glosses[r] for r in rows], corpus, positives, rows)


def load_wordnet_nouns(path: str | Path = "/usr/share/wordnet", examples: bool = False) -> WordNetNouns:
    """Parse `data.noun` in the WordNet dict directory `path`.

    Glosses keep only the definition unless `examples` (the quoted usage examples often contain the lemma).
    """
    data = Path(path) / "data.noun"
    if not data.is_file():
        raise FileNotFoundError(
            f"WordNet noun data not found at {data}. Install Debian's wordnet-base (apt-get install wordnet-base, "
            "files in /usr/share/wordnet) or unpack it without root: apt-get download wordnet-base && "
            "dpkg -x wordnet-base_*.deb DIR, then pass DIR/usr/share/wordnet")
    offsets, lexnames, lemmas, glosses, pointers = [], [], [], [], []
    with open(data, encoding="utf-8") as f:
        for number, line in enumerate(f, start=1):
            if line.startswith("  ") or not line.strip():
                continue
            try:
                offset, lexname, words, hypers, gloss = _parse_line(line)
            except (ValueError, IndexError) as err:
                raise ValueError(f"{data}:{number}: not a WordNet data line ({err})") from None
            offsets.append(offset)
            lexnames.append(lexname)
            lemmas.append(words)
            glosses.append(gloss if examples else _definition(gloss))
            pointers.append(hypers)
    row_of = {offset: row for row, offset in enumerate(offsets)}
    hypernyms = [tuple(row_of[o] for o in hyper if o in row_of) for hyper in pointers]
    return WordNetNouns(np.asarray(offsets, dtype=np.int64), np.asarray(lexnames, dtype=np.int64), lemmas,
                        glosses, hypernyms)


def _parse_line(line: str) -> tuple[int, int, tuple[str, ...], tuple[int, ...], str]:
    head, sep, gloss = line.partition(" | ")
    if not sep:
        raise ValueError("no ' | ' before the gloss")
    fields = head.split()
    if fields[2] != "n":
        raise ValueError(f"synset type {fields[2]!r} is not a noun")
    count = int(fields[3], 16)
    words = tuple(dict.fromkeys(fields[4 + 2 * j].replace("_", " ") for j in range(count)))
    at = 4 + 2 * count
    hypers = []
    for j in range(int(fields[at])):
        symbol, target, pos = fields[at + 1 + 4 * j: at + 4 + 4 * j]
        if symbol in HYPERNYM_POINTERS and pos == "n":
            hypers.append(int(target))
    return int(fields[0]), int(fields[1]), words, tuple(hypers), gloss.strip()


def _definition(gloss: str) -> str:
    """The gloss without its quoted usage examples."""
    cut = gloss.find('; "')
    if cut < 0 and gloss.startswith('"'):
        return gloss
    return (gloss[:cut] if cut >= 0 else gloss).strip()
