"""An offline QA set of fictional documents with single- and two-hop questions, and external QA files.

``synthetic_pool(split)``: made-up people, towns, countries and companies (pseudo-word names from
the vocabulary split), one short document per entity. Single-hop questions ask a fact stated in one
document ("In which town was Vorin Talesku born?"); two-hop questions chain two documents ("In which
country was Vorin Talesku born?" needs the person's town, then the town's country). Every sample
built from it says ``"source": "synthetic"`` in its meta.

``external_pool(path)``: SQuAD (``data/paragraphs/qas``) or HotpotQA (``question``, ``answer``,
``context``, ``supporting_facts``) json read through ``datasets`` from a local file, into RULER's
documents: a SQuAD paragraph's text (its article's other paragraphs are the question's first
distractors), a HotpotQA paragraph as ``title\ntext`` (all of the question's paragraphs go in; the
supporting ones are its gold documents).
"""
from __future__ import annotations

import json
import random
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from longctx.tasks import vocab
from longctx.tasks.errors import TaskError
from longctx.tasks.task import Split

_PROFESSIONS = ("carpenter", "chemist", "sailor", "architect", "violinist", "cartographer", "baker", "surgeon",
                "librarian", "glassblower", "astronomer", "weaver", "engineer", "botanist", "translator")
_DAYS = ("Monday", "Wednesday", "Friday", "Sunday")
_PRODUCTS = ("copper bells", "blue glass", "salted fish", "wool blankets", "clockwork toys", "honey cakes",
             "paper lanterns", "river pearls", "cedar boats", "spiced tea", "stone bridges", "silk maps")


@dataclass(frozen=True)
class QAItem:
    question: str
    answers: tuple[str, ...]
    gold: tuple[int, ...]  # indices into the pool's documents
    hops: int
    related: tuple[int, ...] = ()  # the question's other documents, first among the distractors (RULER)


@dataclass(frozen=True)
class QAPool:
    name: str
    docs: tuple[str, ...]  # "title\ntext"
    single: tuple[QAItem, ...]
    multi: tuple[QAItem, ...]


def _names(rng: random.Random, split: Split, n: int, taken: set[str], syllables: tuple[int, int]) -> list[str]:
    out = []
    while len(out) < n:
        w = vocab.pseudo_word(rng, split, syllables).capitalize()
        if w not in taken:
            taken.add(w)
            out.append(w)
    return out


@lru_cache(maxsize=2)
def synthetic_pool(split: Split, people: int = 3000, towns: int = 900, countries: int = 60,
                   companies: int = 700) -> QAPool:
    """The fictional world of ``split``: documents and questions, the same on any machine."""
    rng = random.Random(f"qa-synthetic|{split}")
    taken: set[str] = set()
    country = _names(rng, split, countries, taken, (2, 3))
    town = _names(rng, split, towns, taken, (2, 3))
    firm = [f"{w} {rng.choice(('Works', 'Company', 'Guild', 'Trading House', 'Foundry'))}"
            for w in _names(rng, split, companies, taken, (2, 3))]
    person = [f"{a} {b}" for a, b in zip(_names(rng, split, people, taken, (2, 2)),
                                         _names(rng, split, people, taken, (2, 4)))]
    town_country = [rng.randrange(countries) for _ in town]
    firm_town = [rng.randrange(towns) for _ in firm]
    firm_year = [str(rng.randrange(1700, 2000)) for _ in firm]
    docs: list[str] = []
    for i, c in enumerate(country):
        docs.append(f"{c}\n{c} is a small country with a long coastline. Its people are known for their "
                    f"{rng.choice(_PRODUCTS)} and their festivals.")
    t0 = len(docs)
    for i, t in enumerate(town):
        docs.append(f"{t}\n{t} is a town in {country[town_country[i]]}. It is famous for its "
                    f"{rng.choice(_PRODUCTS)}, and its market opens every {rng.choice(_DAYS)}.")
    f0 = len(docs)
    for i, f in enumerate(firm):
        docs.append(f"{f}\nThe {f} was founded in {firm_year[i]} in the town of {town[firm_town[i]]}. "
                    f"It makes {rng.choice(_PRODUCTS)}.")
    p0 = len(docs)
    single, multi = [], []
    for i, p in enumerate(person):
        born, works, job = rng.randrange(towns), rng.randrange(companies), rng.choice(_PROFESSIONS)
        job = f"{'an' if job[0] in 'aeiou' else 'a'} {job}"
        docs.append(f"{p}\n{p} was born in {town[born]}. {p.split()[0]} became {job} and works for the {firm[works]}.")
        single.append(QAItem(f"In which town was {p} born?", (town[born],), (p0 + i,), 1))
        single.append(QAItem(f"Which company does {p} work for?", (firm[works], firm[works].split()[0]),
                             (p0 + i,), 1))
        multi.append(QAItem(f"In which country was {p} born?", (country[town_country[born]],),
                            (p0 + i, t0 + born), 2))
        multi.append(QAItem(f"In what year was the company that {p} works for founded?", (firm_year[works],),
                            (p0 + i, f0 + works), 2))
    return QAPool(f"synthetic-{split}", tuple(docs), tuple(single), tuple(multi))


@lru_cache(maxsize=4)
def external_pool(path: str) -> QAPool:
    """SQuAD or HotpotQA from a local json file or a ``datasets`` dataset saved to disk."""
    p = Path(path).expanduser()
    if not p.exists():
        raise TaskError(f"QA file {path!r} does not exist")
    ds = _rows(p)
    cols = set(ds.column_names)
    docs: list[str] = []
    items: list[QAItem] = []
    if "paragraphs" in cols:  # SQuAD: a document is a paragraph's text; its article's others come first
        index: dict[str, int] = {}
        for row in ds:
            article = []
            for para in row["paragraphs"]:
                if para["context"] not in index:
                    index[para["context"]] = len(docs)
                    docs.append(para["context"])
                article.append(index[para["context"]])
            for para in row["paragraphs"]:
                at = index[para["context"]]
                for qa in para["qas"]:
                    answers = tuple(dict.fromkeys(a["text"] for a in qa.get("answers") or []))
                    if answers and not qa.get("is_impossible"):
                        items.append(QAItem(qa["question"], answers, (at,), 1,
                                            tuple(d for d in dict.fromkeys(article) if d != at)))
        return QAPool(f"squad:{p.name}", tuple(docs), tuple(items), tuple(items))
    if {"question", "answer", "context"} <= cols:  # HotpotQA: "title\ntext"; all the question's paragraphs go in
        index = {}
        for row in ds:
            gold, context = [], []
            titles, sents = _hotpot_context(row["context"])
            for title, body in zip(titles, sents):
                text = f"{title}\n{''.join(body)}"
                if text not in index:
                    index[text] = len(docs)
                    docs.append(text)
                context.append((title, index[text]))
            facts = set(f[0] for f in _supporting(row.get("supporting_facts")))
            gold = [d for title, d in dict(context).items() if title in facts]
            if gold:
                items.append(QAItem(row["question"], (row["answer"],), tuple(gold), len(gold),
                                    tuple(d for _, d in context if d not in gold)))
        return QAPool(f"hotpotqa:{p.name}", tuple(docs), tuple(items), tuple(items))
    raise TaskError(f"{p} is neither SQuAD (data/paragraphs/qas) nor HotpotQA (question/answer/context) json")


def _rows(p: Path):
    """The records of ``p`` as a ``datasets.Dataset`` (SQuAD's top-level ``data`` unwrapped)."""
    from datasets import Dataset, DatasetDict, load_dataset, load_from_disk

    try:
        if p.is_dir():
            ds = load_from_disk(str(p))
            return ds[sorted(ds)[0]] if isinstance(ds, DatasetDict) else ds
        ds = load_dataset("json", data_files=str(p), split="train")
        if "data" in ds.column_names:
            ds = load_dataset("json", data_files=str(p), field="data", split="train")
        return ds
    except Exception as e:
        if p.is_file() and p.suffix == ".json":  # raw HotpotQA mixes str and list in one array: arrow refuses it
            try:
                rows = json.loads(p.read_text("utf-8"))
                return Dataset.from_list([{**r, "context": _as_dict(r["context"])} for r in rows])
            except Exception:
                pass
        raise TaskError(f"could not read {p} as SQuAD or HotpotQA: {e}") from None


def _as_dict(ctx) -> dict:
    titles, sents = _hotpot_context(ctx)
    return {"title": titles, "sentences": sents}


def _hotpot_context(ctx) -> tuple[list[str], list[list[str]]]:
    if isinstance(ctx, dict):
        return list(ctx["title"]), [list(s) for s in ctx["sentences"]]
    return [c[0] for c in ctx], [list(c[1]) for c in ctx]


def _supporting(facts) -> list[tuple[str, int]]:
    if not facts:
        return []
    if isinstance(facts, dict):
        return list(zip(facts["title"], facts["sent_id"]))
    return [(f[0], f[1]) for f in facts]
