"""Haystacks: the filler text that needles and questions hide in, taken in whole units to a token budget.

A ``Haystack`` is one cycle of sentence units, each starting with its own separator (``" "`` or a
newline), so ``"".join(units)`` is the text and a needle can go in at any unit boundary. The
separator leads (``" The sky is blue."``) because BPE pre-tokenizers split before a space, so a
unit's token count is the same alone as inside the haystack. It
repeats when a context needs more than one cycle. Sources, none downloaded:

- ``noise_haystack()``: RULER's repeated sentence block "The grass is green. ..." (``noise_lines()``
  keeps each block whole, one per line, as RULER's niah and vt use it).
- ``essay_haystack(seed)``: varied, grammatical English from a small seeded grammar (different
  clause shapes, a lexicon of ~1,300 words, paragraphs), the same bytes for the same seed.
- ``file_haystack(path)``: the user's own text: a text file, a folder of ``.txt`` files, or a
  ``datasets`` dataset saved to disk (its ``text`` column), split into sentences.

``one_line(hay)`` gives any of them as RULER reads an essay: whitespace runs made single spaces.

Each unit is tokenized once per tokenizer (``UnitTable``) and cached, so cutting a 128K
haystack is a bisect over running sums, not a tokenizer call.

    hay = noise_haystack()
    k = hay.take(tokenizer, budget=4000, start=0)   # units that fit in 4000 tokens
    text = "".join(hay.slice(0, k))
"""
from __future__ import annotations

import bisect
import hashlib
import random
import re
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

from longctx.tasks.errors import TaskError
from longctx.tasks.sizing import UnitTable
from longctx.tasks.tokenizers import Tokenizer
from longctx.tasks import vocab

NOISE = "The grass is green. The sky is blue. The sun is yellow. Here we go. There and back again."
ESSAY_SENTENCES = 12_000


@dataclass(eq=False)
class Haystack:
    """One cycle of text units (each with its leading separator), repeated as needed."""

    name: str
    units: tuple[str, ...]
    _tables: dict[str, UnitTable] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        if not self.units:
            raise TaskError(f"haystack {self.name!r} holds no text")

    def table(self, tokenizer: Tokenizer) -> UnitTable:
        """Token counts of one cycle under ``tokenizer`` (computed once, then cached)."""
        t = self._tables.get(tokenizer.name)
        if t is None:
            t = self._tables[tokenizer.name] = UnitTable.build(self.units, tokenizer)
        return t

    def _upto(self, tokenizer: Tokenizer, x: int) -> int:
        """Tokens in the first ``x`` units of the endless repetition."""
        t = self.table(tokenizer)
        cycles, rest = divmod(x, len(self.units))
        return cycles * t.tokens(len(self.units)) + t.tokens(rest)

    def tokens(self, tokenizer: Tokenizer, start: int, k: int) -> int:
        """Tokens in units ``start .. start+k`` counted one by one (BPE seams aside)."""
        return self._upto(tokenizer, start + k) - self._upto(tokenizer, start)

    def take(self, tokenizer: Tokenizer, budget: int, start: int = 0) -> int:
        """The largest ``k`` such that ``k`` units from ``start`` hold at most ``budget`` tokens."""
        t = self.table(tokenizer)
        cycle = t.tokens(len(self.units))
        if cycle <= 0:
            raise TaskError(f"haystack {self.name!r} has no tokens under {tokenizer.name}")
        goal = self._upto(tokenizer, start) + max(budget, 0)
        cycles, rest = divmod(goal, cycle)
        x = cycles * len(self.units) + bisect.bisect_right(t.cumulative, rest)
        return max(x - start, 0)

    def slice(self, start: int, k: int) -> list[str]:
        """Units ``start .. start+k`` of the endless repetition."""
        m, out = len(self.units), []
        pos, end = start, start + k
        while pos < end:
            i = pos % m
            take = min(m - i, end - pos)
            out.extend(self.units[i:i + take])
            pos += take
        return out

    def cycle_tokens(self, tokenizer: Tokenizer) -> int:
        return self.table(tokenizer).tokens(len(self.units))


@lru_cache(maxsize=None)
def noise_haystack() -> Haystack:
    """RULER's noise: its five sentences, each block on its own line, repeated."""
    sentences = re.findall(r"[^.]+\.", NOISE)
    units = tuple(("\n" if i == 0 else " ") + s.strip() for i, s in enumerate(sentences))
    return Haystack("noise", units)


@lru_cache(maxsize=None)
def noise_lines() -> Haystack:
    """RULER's noise as RULER's niah and vt lay it out: the whole five-sentence block is one line."""
    return Haystack("noise-lines", ("\n" + NOISE,))


def one_line(hay: Haystack) -> Haystack:
    """``hay`` with every run of whitespace made one space, as RULER reads its essays."""
    cached = _ONE_LINE.get(hay.name)
    if cached is None or cached[0] is not hay:
        units = tuple(" " + " ".join(u.split()) for u in hay.units if u.strip())
        cached = _ONE_LINE[hay.name] = (hay, Haystack(f"{hay.name}:one-line", units))
    return cached[1]


_ONE_LINE: dict[str, tuple[Haystack, Haystack]] = {}


@lru_cache(maxsize=4)
def essay_haystack(seed: int = 0, n_sentences: int = ESSAY_SENTENCES) -> Haystack:
    """Generated English essays: ``n_sentences`` sentences in paragraphs of 3-8 sentences."""
    rng = random.Random(f"essay|{seed}")
    units: list[str] = []
    while len(units) < n_sentences:
        para = [_sentence(rng) for _ in range(rng.randint(3, 8))]
        units.append("\n\n" + para[0])
        units.extend(" " + s for s in para[1:])
    return Haystack(f"essay:{seed}", tuple(units[:n_sentences]))


def file_haystack(path: str | Path) -> Haystack:
    """The user's text: a file, a folder of ``.txt`` files, or a ``datasets`` dataset on disk."""
    p = Path(path).expanduser()
    if not p.exists():
        raise TaskError(f"haystack path {str(path)!r} does not exist")
    digest = hashlib.sha256()
    texts = _read_texts(p)
    for t in texts:
        digest.update(t.encode("utf-8"))
    units = tuple(u for t in texts for u in _lead(split_sentences(t)))
    if not units:
        raise TaskError(f"haystack {p} holds no text")
    return _cached_file(p.name, digest.hexdigest()[:12], units)


def load_haystack(spec: str) -> Haystack:
    """``noise`` | ``essay`` | ``essay:SEED`` | a path (see ``file_haystack``)."""
    if spec == "noise":
        return noise_haystack()
    if spec == "essay":
        return essay_haystack()
    if spec.startswith("essay:") and spec[6:].isdigit():
        return essay_haystack(int(spec[6:]))
    return file_haystack(spec)


_FILE_CACHE: dict[tuple[str, str], Haystack] = {}


def _cached_file(name: str, digest: str, units: tuple[str, ...]) -> Haystack:
    key = (name, digest)
    if key not in _FILE_CACHE:
        _FILE_CACHE[key] = Haystack(f"file:{name}@{digest}", units)
    return _FILE_CACHE[key]


def split_sentences(text: str) -> list[str]:
    """Sentence units with their trailing whitespace kept, so joining them gives ``text`` back."""
    return [m.group(0) for m in re.finditer(r"\S.*?(?:[.!?][\"')\]]*(?=\s)|$)\s*", text.strip() + "\n", re.S)]


def _lead(sentences: list[str]) -> list[str]:
    """Move each sentence's trailing whitespace to the front of the next (a document starts on a new line)."""
    out, sep = [], "\n"
    for s in sentences:
        body = s.rstrip()
        out.append(sep + body)
        sep = s[len(body):] or " "
    return out


def _read_texts(p: Path) -> list[str]:
    if p.is_dir() and ((p / "dataset_info.json").is_file() or (p / "dataset_dict.json").is_file()):
        return _dataset_texts(p)
    files = sorted(p.rglob("*.txt")) if p.is_dir() else [p]
    if not files:
        raise TaskError(f"haystack folder {p} holds no .txt files")
    out = []
    for f in files:
        data = f.read_bytes()
        if b"\x00" in data:
            raise TaskError(f"haystack file {f} is not text (it holds NUL bytes)")
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as e:
            raise TaskError(f"haystack file {f} is not UTF-8 text: {e}") from None
        if text.strip():
            out.append(text)
    if not out:
        raise TaskError(f"haystack {p} is empty")
    return out


def _dataset_texts(p: Path) -> list[str]:
    from datasets import DatasetDict, load_from_disk

    try:
        ds = load_from_disk(str(p))
    except Exception as e:
        raise TaskError(f"could not load the dataset at {p}: {e}") from None
    if isinstance(ds, DatasetDict):
        ds = ds[sorted(ds)[0]]
    if "text" not in ds.column_names:
        raise TaskError(f"dataset at {p} has no 'text' column (columns: {', '.join(ds.column_names)})")
    texts = [t for t in ds["text"] if isinstance(t, str) and t.strip()]
    if not texts:
        raise TaskError(f"dataset at {p} holds no text")
    return texts


# --- the essay grammar ------------------------------------------------------------------------

_NAMES = ("Ada", "Bruno", "Clara", "Dmitri", "Elena", "Farid", "Greta", "Hugo", "Ines", "Jonas", "Keiko",
          "Luca", "Mira", "Nadia", "Oscar", "Priya", "Quentin", "Rosa", "Samir", "Tova", "Umar", "Vera",
          "Wendell", "Xenia", "Yusuf", "Zora")
_PEOPLE = ("the baker", "my neighbor", "the old teacher", "a young engineer", "the mayor", "our guide",
           "the farmer", "a careful reader", "the historian", "the youngest child", "a traveling musician",
           "the librarian", "the ferry captain", "a retired nurse", "the village potter", "my grandmother")
# (base, past, third person) of verbs that take an object
_VERBS = (("find", "found", "finds"), ("keep", "kept", "keeps"), ("build", "built", "builds"),
          ("carry", "carried", "carries"), ("paint", "painted", "paints"), ("repair", "repaired", "repairs"),
          ("describe", "described", "describes"), ("notice", "noticed", "notices"), ("borrow", "borrowed", "borrows"),
          ("sell", "sold", "sells"), ("buy", "bought", "buys"), ("hide", "hid", "hides"),
          ("study", "studied", "studies"),
          ("measure", "measured", "measures"), ("remember", "remembered", "remembers"), ("clean", "cleaned", "cleans"),
          ("photograph", "photographed", "photographs"), ("follow", "followed", "follows"), ("lose", "lost", "loses"),
          ("bring", "brought", "brings"), ("draw", "drew", "draws"), ("choose", "chose", "chooses"),
          ("admire", "admired", "admires"), ("collect", "collected", "collects"), ("examine", "examined", "examines"),
          ("move", "moved", "moves"), ("wrap", "wrapped", "wraps"), ("protect", "protected", "protects"))
_INTRANSITIVE = (("arrive", "arrived"), ("wait", "waited"), ("laugh", "laughed"), ("listen", "listened"),
                 ("wander", "wandered"), ("rest", "rested"), ("hesitate", "hesitated"), ("return", "returned"),
                 ("sing", "sang"), ("work", "worked"), ("travel", "traveled"), ("sleep", "slept"))
_ADVERBS = ("slowly", "carefully", "quietly", "at once", "without a word", "with great patience", "again",
            "every morning", "before dawn", "in secret", "for the first time", "almost by accident")
_PLACES = ("near the river", "behind the old mill", "in the market square", "on the northern hill",
           "at the edge of the forest", "inside the station", "along the coast road", "under the bridge",
           "in a narrow street", "beside the harbor", "across the valley", "at the top of the stairs")
_TIMES = ("In the spring", "Later that year", "On a cold evening", "Long before the war", "By the end of summer",
          "Every winter", "One autumn", "Early the next day", "During the long drought", "After the festival")
_LINKS = ("However", "Still", "Even so", "Meanwhile", "In the end", "For a while", "Of course", "Oddly enough",
          "As a rule", "Perhaps")
_OPINIONS = ("It is often said that", "Few people believe that", "Some argue that", "It seems clear that",
             "Nobody doubts that", "Historians still debate whether", "It is strange that", "Many suspect that")
_FEELINGS = ("proud", "tired", "curious", "puzzled", "hopeful", "calm", "restless", "grateful", "uneasy", "cheerful")


@lru_cache(maxsize=1)
def _lexicon() -> tuple[tuple[str, ...], tuple[str, ...]]:
    return vocab.nouns("eval") + vocab.nouns("train"), vocab.adjectives("eval") + vocab.adjectives("train")


def _np(rng: random.Random) -> str:
    """A noun phrase: 'the old lantern', 'a quiet harbor', 'Clara', 'the librarian'."""
    r = rng.random()
    if r < 0.2:
        return rng.choice(_NAMES)
    if r < 0.35:
        return rng.choice(_PEOPLE)
    nouns, adjectives = _lexicon()
    noun = rng.choice(nouns)
    if rng.random() < 0.5:
        noun = f"{rng.choice(adjectives)} {noun}"
    if rng.random() < 0.5:
        return f"the {noun}"
    return f"{'an' if noun[0] in 'aeiou' else 'a'} {noun}"


def _cap(s: str) -> str:
    return s[0].upper() + s[1:]


def _sentence(rng: random.Random) -> str:
    """One sentence from one of ten clause shapes."""
    v = rng.choice(_VERBS)
    vi = rng.choice(_INTRANSITIVE)
    shape = rng.randrange(10)
    if shape == 0:
        return f"{_cap(_np(rng))} {v[1]} {_np(rng)} {rng.choice(_PLACES)}."
    if shape == 1:
        return f"{rng.choice(_TIMES)}, {_np(rng)} {v[1]} {_np(rng)} {rng.choice(_ADVERBS)}."
    if shape == 2:
        return f"When {_np(rng)} {vi[1]}, {_np(rng)} {v[1]} {_np(rng)}."
    if shape == 3:
        return f"{rng.choice(_LINKS)}, {_np(rng)} {vi[1]} {rng.choice(_PLACES)}."
    if shape == 4:
        return f"{rng.choice(_OPINIONS)} {_np(rng)} {v[2]} {_np(rng)} {rng.choice(_ADVERBS)}."
    if shape == 5:
        return f"{rng.choice(_NAMES)} said that {_np(rng)} {v[1]} {_np(rng)}."
    if shape == 6:
        return f"Why would {_np(rng)} {v[0]} {_np(rng)} {rng.choice(_PLACES)}?"
    if shape == 7:
        return f"{_cap(_np(rng))} felt {rng.choice(_FEELINGS)} because {_np(rng)} {vi[1]} {rng.choice(_ADVERBS)}."
    if shape == 8:
        return f"{_cap(_np(rng))} {v[1]} {_np(rng)}, and {_np(rng)} {vi[1]} {rng.choice(_PLACES)}."
    return f"Nobody knew whether {_np(rng)} would {vi[0]} or {v[0]} {_np(rng)} {rng.choice(_ADVERBS)}."
