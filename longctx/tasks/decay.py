"""Recall-vs-distance decay probes: how recall of a fact depends on its token distance to the question.

- ``decay_distance``: one ``key -> value`` fact at a token distance ``d`` before the question, ``d``
  from a log grid (16, 32, 64, ... and the farthest place the context allows); sample ``i`` takes
  grid point ``i mod len(grid)``. Recall that decays with ``d`` marks fixed-capacity state, a cliff
  marks a fixed window, a flat curve marks content routing.
- ``decay_depth``: the needle-in-a-haystack grid: the fact at depth 0, 10, ..., 100 % of the
  haystack (cycled per sample) and the ctx the user asks for (the length axis).
- ``decay_multifact``: ``k`` facts plus distractor facts whose keys differ from a true key by one
  word, all shuffled together just before the question, so only the key's content tells them
  apart; the question asks for one true key (``query="one"``) or all ``k`` (``query="all"``).

Values are numbers (default), uuids or words (``DecayConfig.value``; ``DECAY_VARIANTS`` names them).
``meta["distance"]`` is exact: the number of tokens, in the final prompt's own tokenization, from
the fact's first token to the question's first token. The fact and the question each begin with a
space after a sentence end (a pre-tokenizer split for byte-level BPE and SentencePiece alike), and
every position is checked by comparing token lists; a tokenizer that merges across that boundary
is refused rather than reported approximately. Grid points nearer than the fact's own length get
no fact there: a sample whose grid point its fact cannot reach takes the nearest reachable point above it
and records every grid point its fact is too long for in ``meta["unmet_distances"]``; the distance it
reports is exactly its ``target_distance`` (re-tokenized), or generation stops with an error. Filler is ``tasks.haystack`` text.
Metric ``string_match_all``. Header, fact, question and answer prefix (kept apart from the prompt) are
NIAH's own (``tasks.niah``), so a probe differs from niah_single_1 only in where the fact sits.
"""
from __future__ import annotations

import dataclasses
import random
from dataclasses import dataclass
from typing import Any, Iterator

from longctx.tasks import vocab
from longctx.tasks.errors import TaskError
from longctx.tasks.haystack import Haystack, load_haystack
from longctx.tasks.niah import NEEDLE, query_text, wording
from longctx.tasks.sample import Sample, make_sample
from longctx.tasks.sizing import tolerance
from longctx.tasks.task import Split, Task
from longctx.tasks.tokenizers import Tokenizer
from longctx.tasks.trim import fit_prefix

_KINDS = ("numbers", "uuids", "words")
_ROUNDS = 4
_SHIFTS = 6  # filler starts tried for an exact distance


@dataclass(frozen=True)
class DecayConfig:
    mode: str  # "distance" | "depth" | "multifact"
    value: str = "numbers"  # numbers | uuids | words
    haystack: str = "essay"
    depths: tuple[int, ...] = tuple(range(0, 101, 10))
    min_distance: int = 16
    k_facts: int = 4
    n_distractors: int = 4
    query: str = "one"  # multifact: "one" true key or "all" of them


def fact_text(key: str, value: str, kind: str) -> str:
    return NEEDLE.format(label=kind, key=key, value=value)


def question_text(keys: list[str], kind: str) -> tuple[str, str, str]:
    """(header, question, answer prefix) asking for the value of one key or of several, in NIAH's own
    words (``tasks.niah.wording``, singular for one key), so a probe differs from niah_single only in
    where the fact sits."""
    head, question, prefix = wording(kind, query_text(keys), len(keys) == 1)
    return head, question.strip(), prefix


def distance_grid(lo: int, hi: int) -> list[int]:
    """``lo, 2 lo, 4 lo, ...`` below ``hi``, then ``hi`` (the farthest the context allows)."""
    grid, d = [], lo
    while d < hi:
        grid.append(d)
        d *= 2
    return grid + [hi]


def token_index(full_ids: list[int], text: str, offset: int, tok: Tokenizer) -> int:
    """Index in ``full_ids`` (the tokens of ``text``) of the token that starts at character ``offset``.

    Exact: the tokens of ``text[offset:]`` must be the tail of ``full_ids`` (or those of
    ``text[:offset]`` its head; the shorter side is tried first); otherwise the tokenizer merged
    across the boundary and we refuse.
    """
    def from_tail() -> int | None:
        tail = tok.encode(text[offset:])
        ok = len(tail) <= len(full_ids) and full_ids[len(full_ids) - len(tail):] == tail
        return len(full_ids) - len(tail) if ok else None

    def from_head() -> int | None:
        head = tok.encode(text[:offset])
        return len(head) if full_ids[: len(head)] == head else None

    for find in (from_tail, from_head) if offset > len(text) // 2 else (from_head, from_tail):
        index = find()
        if index is not None:
            return index
    raise TaskError(f"tokenizer {tok.name} merges tokens across a word boundary; fact positions cannot be exact")


class _Filler:
    """Haystack text of a token budget: whole units from ``start`` plus one unit cut to fit."""

    def __init__(self, hay: Haystack, tok: Tokenizer, start: int):
        self.hay, self.tok, self.start = hay, tok, start

    def text(self, budget: int, cut_first: bool) -> str:
        if budget <= 0:
            return ""
        k = self.hay.take(self.tok, budget, self.start)
        units = "".join(self.hay.slice(self.start, k))
        gap = budget - self.hay.tokens(self.tok, self.start, k)
        cut, _ = fit_prefix(self.hay.slice(self.start + k, 1)[0].strip(), gap - 1, self.tok)  # and its space
        parts = (cut.strip(), units.strip()) if cut_first else (units.strip(), cut.strip())
        return " ".join(p for p in parts if p)


class DecayTask:
    """A recall probe (see the module docstring); ``config`` is its row of the variant table."""

    version = "3"
    metric = "string_match_all"

    def replace(self, **changes: Any) -> "DecayTask":
        """The same probe with config fields changed, e.g. ``replace(haystack="my.txt", value="uuids")``."""
        bad = sorted(set(changes) - {f.name for f in dataclasses.fields(self.config)})
        if bad:
            raise TaskError(f"{self.name} has no option {', '.join(bad)}")
        return DecayTask(self.name, dataclasses.replace(self.config, **changes))

    def __init__(self, name: str, config: DecayConfig):
        if config.value not in _KINDS:
            raise TaskError(f"unknown value kind {config.value!r}: use numbers, uuids or words")
        if config.mode not in ("distance", "depth", "multifact") or config.query not in ("one", "all"):
            raise TaskError(f"unknown decay mode {config.mode!r} or query {config.query!r}")
        self.name, self.config = name, config
        self.answer_budget = 256 if config.mode == "multifact" and config.query == "all" else 128
        self.description = {
            "distance": "one fact at an exact token distance d (log grid 16..ctx) before the question",
            "depth": "needle at depth 0-100 % x context length (the NIAH grid)",
            "multifact": f"{config.k_facts} facts + {config.n_distractors} one-word-off distractor keys next to the question",
        }[config.mode] + f"; {config.value} values"

    def generate(self, ctx: int, n: int, seed: int, tokenizer: Tokenizer, split: Split = "eval",
                 overhead: int = 0) -> Iterator[Sample]:
        vocab.check_split(split)
        hay = load_haystack(self.config.haystack)
        for i in range(n):
            yield self._sample(ctx, seed, i, tokenizer, split, overhead, hay)

    def _facts(self, rng: random.Random, split: Split) -> tuple[list[tuple[str, str]], list[tuple[str, str]], list[str]]:
        """(true facts, distractor facts, queried keys) as (key, value) pairs."""
        cfg = self.config
        k = cfg.k_facts if cfg.mode == "multifact" else 1
        keys = vocab.draw_distinct("words", rng, split, k)
        values = vocab.draw_distinct(cfg.value, rng, split, k, exclude=set(keys))
        facts = list(zip(keys, values))
        distractors: list[tuple[str, str]] = []
        if cfg.mode == "multifact":
            dkeys = _distractor_keys(rng, split, keys, cfg.n_distractors)
            dvalues = vocab.draw_distinct(cfg.value, rng, split, len(dkeys), exclude={*keys, *values, *dkeys})
            distractors = list(zip(dkeys, dvalues))
        query = keys if cfg.mode == "multifact" and cfg.query == "all" else [rng.choice(keys)]
        return facts, distractors, query

    def _sample(self, ctx: int, seed: int, i: int, tok: Tokenizer, split: Split, overhead: int, hay: Haystack) -> Sample:
        cfg = self.config
        rng = random.Random(f"{self.name}|{ctx}|{seed}|{i}")
        facts, distractors, query = self._facts(rng, split)
        header, question, answer_prefix = question_text(query, cfg.value)
        target = ctx - overhead - self.answer_budget - len(tok.encode(answer_prefix))
        before = _Filler(hay, tok, rng.randrange(len(hay.units)))
        between = _Filler(hay, tok, rng.randrange(len(hay.units)))
        rows = [(k, v, True) for k, v in facts] + [(k, v, False) for k, v in distractors]
        rng.shuffle(rows)
        header_n, question_n, *fact_ns = (len(x) for x in tok.encode_batch(
            [header, question, *(fact_text(k, v, cfg.value) for k, v, _ in rows)]))
        room = target - tolerance(target) // 2 - header_n - question_n - sum(fact_ns) - 2 * len(rows)
        if room < 0:
            raise TaskError(f"ctx {ctx} is too small for {self.name}: its header, facts, question and "
                            f"{self.answer_budget}-token answer budget need more; use a larger --ctx")
        meta: dict = {}
        if cfg.mode == "multifact":
            spread = room > 2 * sum(fact_ns)  # filler lines between the facts only where there is room
            tail, tail_n = self._cluster(rng, rows, question, between, cfg.value, spread)
        else:
            fact = fact_text(rows[0][0], rows[0][1], cfg.value)
            lo = len(tok.encode(f" {fact}\n {question}")) - len(tok.encode(f" {question}"))  # the nearest it can be
            if cfg.mode == "distance":
                grid = distance_grid(cfg.min_distance, room + lo)
                # reachable: the fact right before the question, or it and at least one filler character
                met = [g for g in grid if g == lo or g >= lo + len(tok.encode(" a"))]
                meta["unmet_distances"] = [g for g in grid if g not in met]
                aim = grid[i % len(grid)]
                meta["target_distance"] = want = min(g for g in met if g >= aim)
            else:
                meta["depth"] = cfg.depths[i % len(cfg.depths)]
                want = lo + round(room * (100 - meta["depth"]) / 100)
            rounds = 2 * _ROUNDS if cfg.mode == "distance" else 1  # depth is a share of the haystack, not a count
            tail, tail_n = self._tail(rows[0], question, want, between, tok, cfg.value, rounds)
        head, full, full_ids = self._head(header, tail, tail_n, target, before, tok)
        q_at = token_index(full_ids, full, len(full) - len(question) - 1, tok)
        positions = [token_index(full_ids, full, len(head) + off, tok) for off in _fact_offsets(tail, rows, cfg.value)]
        distances = [q_at - p for p in positions]
        if cfg.mode == "distance":
            meta["distance"] = distances[0]
            if distances[0] != meta["target_distance"]:
                raise TaskError(f"{self.name} at ctx {ctx}: sample {i} could not put its fact exactly "
                                f"{meta['target_distance']} tokens of {tok.name} before the question "
                                f"(nearest found: {distances[0]}); please report")
        elif cfg.mode == "depth":
            hay_tokens = q_at - header_n - (fact_ns[0] + 1)
            meta["depth_measured"] = round(100 * (positions[0] - header_n) / max(1, hay_tokens), 2)
            meta["fact_distance"] = distances[0]
        else:
            meta.update(query=cfg.query, k_facts=len(facts), n_distractors=len(distractors))
        meta.update(
            fact_positions=positions, question_position=q_at, query_keys=query, value_kind=cfg.value,
            facts=[{"key": k, "value": v, "true": t, "position": p, "distance": d}
                   for (k, v, t), p, d in zip(rows, positions, distances)],
            haystack=hay.name, seed=seed, version=self.version, split=split,
        )
        value_of = dict(facts)
        return make_sample(id=f"{self.name}-{ctx}-{seed}-{i}", task=self.name, ctx=ctx, tokenizer=tok.name,
                           answers=[value_of[k] for k in query], metric=self.metric, max_new_tokens=self.answer_budget,
                           prompt_tokens=len(tok.encode(full + answer_prefix)), input=full, answer_prefix=answer_prefix,
                           meta=meta)

    def _tail(self, row: tuple[str, str, bool], question: str, want: int, between: _Filler, tok: Tokenizer,
              kind: str, rounds: int) -> tuple[str, int]:
        """The fact, filler, and the question ``want`` tokens after the fact's first token: exact where
        the filler can make it so (corrected by the measured distance for a few rounds, then tried with
        filler from further on in the haystack), else as near as whole tokens allow."""
        fact = fact_text(row[0], row[1], kind)
        question_n = len(tok.encode(f" {question}"))
        best: tuple[str, int] = ("", 0)
        best_err = None
        for shift in range(_SHIFTS if rounds > 1 else 1):
            filler_of = _Filler(between.hay, tok, between.start + 7 * shift)
            budget = want - len(tok.encode(f" {fact}")) - 1
            for _ in range(rounds):
                filler = filler_of.text(budget, cut_first=False)
                tail = f" {fact} {filler}\n {question}" if filler else f" {fact}\n {question}"
                n = len(tok.encode(tail))
                err = n - question_n - want
                if best_err is None or abs(err) < abs(best_err):
                    best, best_err = (tail, n), err
                if err == 0 or (err > 0 and not filler):
                    break
                budget -= err
            if best_err == 0:
                break
        return best

    def _cluster(self, rng: random.Random, rows: list[tuple[str, str, bool]], question: str, between: _Filler,
                 kind: str, spread: bool) -> tuple[str, int]:
        """Multifact: every fact on its own line, in shuffled order, some followed by one filler sentence."""
        lines = []
        for j, (k, v, _) in enumerate(rows):
            lines.append(fact_text(k, v, kind))
            if spread and rng.random() < 0.5:
                lines.append(between.hay.slice(between.start + j, 1)[0].strip())
        tail = " " + "\n ".join(lines) + f"\n {question}"
        return tail, len(between.tok.encode(tail))

    def _head(self, header: str, tail: str, tail_n: int, target: int, before: _Filler,
              tok: Tokenizer) -> tuple[str, str, list[int]]:
        """Header plus filler before the fact(s), sized so the prompt lands within tolerance of ``target``."""
        tol = tolerance(target)
        aim = target - tol // 2
        budget = aim - len(tok.encode(header)) - tail_n - 1
        for _ in range(_ROUNDS):
            filler = before.text(budget, cut_first=True)
            head = f"{header}{filler}"
            ids = tok.encode(head + tail)
            if target - tol <= len(ids) <= target:
                return head, head + tail, ids
            if len(ids) > target and not filler:
                raise TaskError(f"ctx is too small for {self.name}: header, facts and question need "
                                f"{len(ids)} of {target} tokens; use a larger --ctx")
            budget += aim - len(ids)
        raise TaskError(f"could not size {self.name} to {target} tokens within {tol} under {tok.name}; please report")


def _fact_offsets(tail: str, rows, kind: str) -> list[int]:
    out, at = [], 0
    for k, v, _ in rows:
        at = tail.index(" " + fact_text(k, v, kind), at)
        out.append(at)
    return out


def _distractor_keys(rng: random.Random, split: Split, keys: list[str], n: int) -> list[str]:
    """``n`` keys that each differ from one true key by one word (never equal to any true key)."""
    out: list[str] = []
    while len(out) < n:
        adj, noun = rng.choice(keys).split("-", 1)
        if rng.random() < 0.5:
            cand = f"{rng.choice(vocab.adjectives(split))}-{noun}"
        else:
            cand = f"{adj}-{rng.choice(vocab.nouns(split))}"
        if cand not in keys and cand not in out:
            out.append(cand)
    return out


DECAY_TASKS: dict[str, Task] = {
    "decay_distance": DecayTask("decay_distance", DecayConfig("distance")),
    "decay_depth": DecayTask("decay_depth", DecayConfig("depth")),
    "decay_multifact": DecayTask("decay_multifact", DecayConfig("multifact")),
}

DECAY_VARIANTS: dict[str, Task] = {
    f"{name}_{kind}": DecayTask(f"{name}_{kind}", DecayConfig(mode, value=kind))
    for name, mode in (("decay_distance", "distance"), ("decay_depth", "depth"), ("decay_multifact", "multifact"))
    for kind in ("numbers", "uuids", "words")
}
