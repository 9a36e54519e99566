"""RULER's aggregation tasks: common words extraction (``cwe``) and frequent words extraction (``fwe``).

``cwe``: a numbered list in which ten common words appear 30 times each and the others 3 times
(RULER's ``freq_cw``, ``freq_ucw``, ``num_cw``; below 4096 tokens of ctx RULER's 6 and 1), after
RULER's one solved example (40 words repeated 10 and 3 times; below 4096, 20 words repeated 3 and
1) and its answer, then a single newline. The answer is the ten common words. Words are the split's
English words, then pseudo-words once the list needs more. The list grows by whole words (each
uncommon word with all its repeats) until the next would pass the budget; later words that still
fit close the gap. Where RULER's repeats of the ten common words alone cannot fit the context
(RULER's own script would not finish), they repeat fewer times, recorded in ``freq_common``.

``fwe``: coded text of made-up six-letter words whose counts follow Zipf's law (alpha 2, rank 1 is
the dots ``...``), over RULER's vocabulary of ``(ctx - 50) // 50`` words; the answer is ranks 2-4.
The text grows by whole Zipf draws; the last gap is closed with single extra occurrences of
low-ranked words, which cannot change the answer.
"""
from __future__ import annotations

import math
import random
import string
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from longctx.tasks import vocab
from longctx.tasks.prompt_fit import Built, Counter, Fitter, Layout
from longctx.tasks.ruler_base import RulerTask
from longctx.tasks.task import Split

CWE_TEMPLATE = ("Below is a numbered list of words. In these words, some appear more often than others. "
                "Memorize the ones that appear most often.\n")
CWE_QUESTION = "\nQuestion: What are the {n} most common words in the above list?"
CWE_PREFIX = " Answer: The top {n} words that appear most often in the list are:"
FWE_TEMPLATE = ("Read the following coded text and track the frequency of each coded word. "
                "Find the three most frequently appeared coded words.")
FWE_QUESTION = ("\nQuestion: Do not provide any explanation. Please ignore the dots '....'. "
                "What are the three most frequently appeared words in the above coded text?")
FWE_PREFIX = " Answer: According to the coded text above, the three most frequently appeared words are:"
_PSEUDO_POOL = 30_000
_FILL_TRIES = 64  # later words tried for the last gap once one does not fit
RULER_SHORT_CTX = 4096  # below it RULER's cwe uses a smaller example and repeats (6 and 1)


@dataclass(frozen=True)
class CWEConfig:
    freq_common: int = 30
    freq_uncommon: int = 3
    num_common: int = 10


@dataclass(frozen=True)
class FWEConfig:
    alpha: float = 2.0
    vocab_size: int | None = None  # None: RULER's (ctx - answer budget) // 50
    word_len: int = 6
    num_answers: int = 3


@lru_cache(maxsize=2)
def _pseudo_pool(split: Split) -> tuple[str, ...]:
    rng = random.Random(f"cwe-pseudo|{split}")
    real = set(vocab.words(split))
    out: dict[str, None] = {}
    while len(out) < _PSEUDO_POOL:
        w = vocab.pseudo_word(rng, split)
        if w not in real:
            out[w] = None
    return tuple(out)


def _numbered(words: list[str]) -> str:
    return " ".join(f"{i + 1}. {w}" for i, w in enumerate(words))


class CWETask(RulerTask):
    config: CWEConfig
    version = "2"

    def prepare(self, rng: random.Random, fitter: Fitter, split: Split, index: int
                ) -> tuple[Layout, list[str], dict[str, Any]]:
        c, count = self.config, fitter.count
        short = fitter.ctx < RULER_SHORT_CTX
        ex_words, ex_common, ex_uncommon = (20, 3, 1) if short else (40, 10, 3)  # RULER's one-shot example
        freq_c, freq_u = (6, 1) if short else (c.freq_common, c.freq_uncommon)
        real = list(vocab.words(split))
        rng.shuffle(real)
        example, common, rest = real[:ex_words], real[ex_words:ex_words + c.num_common], real[ex_words + c.num_common:]
        pseudo = _pseudo_pool(split)
        # a random walk through the pseudo-word pool (offset and stride coprime with its size)
        offset, stride = rng.randrange(len(pseudo)), rng.randrange(1, len(pseudo))
        while math.gcd(stride, len(pseudo)) != 1:
            stride += 1
        ex_list = example[:c.num_common] * ex_common + example[c.num_common:] * ex_uncommon
        rng.shuffle(ex_list)
        question, prefix = CWE_QUESTION.format(n=c.num_common), CWE_PREFIX.format(n=c.num_common)
        head = (f"{CWE_TEMPLATE}{_numbered(ex_list)}{question}{prefix} {_numbered(example[:c.num_common])}\n"
                f"{CWE_TEMPLATE}")
        fixed = count(head) + count(question) + count(prefix)
        cost_of = _word_costs(count, split)
        item_seed = rng.random()

        def words_in_order():
            yield from rest
            for i in range(len(pseudo)):
                yield pseudo[(offset + i * stride) % len(pseudo)]

        def numbered(items: list[str], cost: int, budget: int, freq: int) -> tuple[list[str], int]:
            """The listing's items (``cost`` tokens, numbers included) shuffled, and the prompt's token
            count, trimmed to ``budget`` without losing a common word's ``freq`` repeats."""
            random.Random(item_seed).shuffle(items)
            total = fixed + cost + count(f"1. {items[0]}") - count(" 1.") - cost_of[items[0]]
            while total > budget and len(items) > c.num_common * freq:
                last = items.pop()
                total -= count(f" {len(items) + 1}.") + cost_of[last]
            return items, total

        def layout(budget: int) -> Built:
            room = budget - fixed
            # RULER's repeats; fewer only where its own cannot fit this context (RULER would not finish)
            freq = freq_c
            items = [w for w in common for _ in range(freq)]
            cost = sum(cost_of[w] for w in items) + _numbers(count, len(items))
            while cost > room and freq > freq_u + 2:
                freq -= 1
                items = [w for w in common for _ in range(freq)]
                cost = sum(cost_of[w] for w in items) + _numbers(count, len(items))
            if cost > room:
                raise fitter.too_small(fixed + cost)
            n = len(items)
            nums = _numbers(count, n + room // 2 + 8, cumulative=True)
            misses, smallest = 0, 0
            for w in words_in_order():  # uncommon words, freq_u times each; later ones close the last gap
                step = freq_u * cost_of[w] + nums[n + freq_u] - nums[n]
                if cost + step > room:
                    smallest = step if not misses else min(smallest, step)
                    misses += 1
                    if misses > _FILL_TRIES:
                        break
                    continue
                items.extend([w] * freq_u)
                cost += step
                n += freq_u
                if room - cost <= fitter.tol // 2:
                    break
            items, total = numbered(items, cost, budget, freq)
            return Built(head + _numbered(items) + question, prefix, total, [],
                         {"list_items": len(items), "freq_common": freq, "freq_uncommon": freq_u,
                          "fill_unit_tokens": smallest})

        return layout, list(common), {"common_words": list(common)}


_COSTS: dict[tuple[str, str], dict[str, int]] = {}
_NUMBER_CUM: dict[str, list[int]] = {}


def _word_costs(count: Counter, split: Split) -> dict[str, int]:
    """Tokens of " word" for every word and pseudo-word of ``split`` (once per tokenizer)."""
    key = (count.tokenizer.name, split)
    if key not in _COSTS:
        words = list(vocab.words(split)) + list(_pseudo_pool(split))
        _COSTS[key] = {w: len(ids) for w, ids in zip(words, count.tokenizer.encode_batch([" " + w for w in words]))}
    return _COSTS[key]


def _numbers(count: Counter, n: int, cumulative: bool = False):
    """Tokens of the item numbers " 1." .. " n.": their sum, or the running sums (index i: first i)."""
    cum = _NUMBER_CUM.setdefault(count.tokenizer.name, [0])
    if len(cum) <= n:
        new = count.tokenizer.encode_batch([f" {i}." for i in range(len(cum), n + 1)])
        for ids in new:
            cum.append(cum[-1] + len(ids))
    return cum if cumulative else cum[n]


@lru_cache(maxsize=4)
def _zeta(alpha: float) -> float:
    """Riemann zeta(alpha), alpha > 1: the sum to 1e5 plus the integral of the tail."""
    return sum(k ** -alpha for k in range(1, 100_000)) + 100_000 ** (1 - alpha) / (alpha - 1)


def _coded(rng: random.Random, split: Split, n: int, length: int) -> list[str]:
    out: dict[str, None] = {}
    while len(out) < n:
        w = "".join(rng.choices(string.ascii_lowercase, k=length))
        if vocab.split_of(w) == split:
            out[w] = None
    return list(out)


class FWETask(RulerTask):
    config: FWEConfig
    version = "2"

    def prepare(self, rng: random.Random, fitter: Fitter, split: Split, index: int
                ) -> tuple[Layout, list[str], dict[str, Any]]:
        c, count = self.config, fitter.count
        size = c.vocab_size or max(2 * c.num_answers + 2, (fitter.ctx - self.answer_budget) // 50)
        words = ["..."] + _coded(rng, split, size - 1, c.word_len)
        cost = count.many([" " + w for w in words])
        zeta = _zeta(c.alpha)
        weights = [k ** -c.alpha / zeta for k in range(1, len(words) + 1)]
        fixed = count(FWE_TEMPLATE) + count(FWE_QUESTION) + count(FWE_PREFIX)
        order_seed = rng.random()

        def counts(num: int) -> list[int]:
            return [int(num * w) for w in weights]

        def tokens(cnt: list[int]) -> int:
            return sum(a * b for a, b in zip(cnt, cost))

        def layout(budget: int) -> Built:
            room = budget - fixed
            if room < 0:
                raise fitter.too_small(fixed)
            lo, hi = 0, max(room, 1) * 2
            while lo < hi:
                mid = (lo + hi + 1) // 2
                if tokens(counts(mid)) <= room:
                    lo = mid
                else:
                    hi = mid - 1
            cnt = counts(lo)
            if cnt[c.num_answers] <= cnt[c.num_answers + 1] or cnt[c.num_answers] < 2:
                raise fitter.too_small(fixed + tokens(counts(lo + 1)))
            used = tokens(cnt)
            k = len(words) - 1
            while room - used > fitter.tol // 2 and k > 4 * c.num_answers:
                if cnt[k] + 1 < cnt[c.num_answers] and used + cost[k] <= room:  # once more, answer unchanged
                    cnt[k] += 1
                    used += cost[k]
                k -= 1
            text = [w for w, n in zip(words, cnt) for _ in range(n)]
            random.Random(order_seed).shuffle(text)
            body = "".join(" " + w for w in text)
            total = fixed + used
            return Built(FWE_TEMPLATE + body + FWE_QUESTION, FWE_PREFIX, total, [],
                         {"coded_words": len(text), "counts_top": cnt[:c.num_answers + 2]})

        answers = words[1:1 + c.num_answers]
        return layout, answers, {"alpha": c.alpha, "vocab_size": size}
