"""MRCR (multi-round coreference), as OpenAI's MRCR publishes it, generated offline to a token budget.

A long conversation in which the user asks for many pieces of writing (``tasks.mrcr_writing``);
2, 4 or 8 of the asks are the same text (the needles), every assistant reply is different. The
final user turn asks to prepend a random 10-character string to the i-th (1-indexed) reply to
that ask and to write nothing else. The answer is that string followed by the reply.

Sizing. A sample is ``messages`` (user/assistant turns ending with the final ask). Its
``prompt_tokens`` counts the turn *contents* in the tokenizer (each turn tokenized on its own, so
the count is exact and additive); the chat template is the model's, added by the runner.
``overhead`` is the template tokens the model's format adds around a one-message prompt and
``turn_overhead`` what each message costs (default: ``overhead``); the difference is charged once
(BOS, a default system prompt), the per-message cost once per message:
``prompt_tokens + (overhead - turn_overhead) + turn_overhead * len(messages) + max_new_tokens <= ctx``,
within ``tasks.sizing.tolerance`` of ctx. Turn pairs are the units of ``sizing.UnitTable``; one
haystack reply is cut by ``tasks.trim.fit_prefix`` to land on the target.

Answer budget. Replies are at most ~1,200 characters (~270 tokens of a BPE vocabulary), so
``answer_budget`` is 512 tokens: room for the hash and the longest reply copied with changes.
A sample's ``max_new_tokens`` is 512, or its answer's own token count plus a quarter plus 16 where
that is more (``sample_budget``; tokenizers with few characters per token, e.g. byte-level, where
it reaches ~1,500). No answer prefix.

Grading (``grade_mrcr``) is the published one; results are reported per requested ctx and per
the published token bins (``meta["bin"]``: 4k-8k ... 512k-1m, on the prompt's token count).

Meta: ``bin``, ``n_needles``, ``desired_index`` (1-based), ``random_prefix``, ``needle_ask``,
``form``, ``topic``, ``needle_turns`` (indices in ``messages`` of the needle replies; each ask is
the turn before), ``desired_turn``, ``needle_positions`` (content-token offset of each needle
reply's first token, template not counted), ``n_messages``, ``seed``, ``version``, ``split``.
"""
from __future__ import annotations

import random
import string
from dataclasses import dataclass
from difflib import SequenceMatcher
from itertools import accumulate
from typing import Iterator

from longctx.tasks.errors import TaskError
from longctx.tasks.mrcr_writing import FORMS, Ask, topics, write_reply
from longctx.tasks.sample import Sample, make_sample
from longctx.tasks.sizing import UnitTable, tolerance
from longctx.tasks.task import Split, Task
from longctx.tasks.tokenizers import Tokenizer
from longctx.tasks.trim import fit_prefix

BINS: tuple[tuple[int, int], ...] = tuple((2**k, 2 ** (k + 1)) for k in range(12, 20))
_SHORT_FORMS = ("riddle", "social media post")
_ALPHABET = string.ascii_letters + string.digits
_CHUNK = 64


def grade_mrcr(response: str, answer: str, random_prefix: str) -> float:
    """0 unless ``response`` starts with ``random_prefix``; else the SequenceMatcher ratio of both, prefix removed."""
    if not response.startswith(random_prefix):
        return 0.0
    return float(SequenceMatcher(None, response.removeprefix(random_prefix), answer.removeprefix(random_prefix)).ratio())


def _k(n: int) -> str:
    return f"{n // 1048576}m" if n % 1048576 == 0 else f"{n // 1024}k"


def token_bin(n_tokens: int) -> str:
    """The published MRCR bin of a prompt of ``n_tokens``: ``4k-8k`` ... ``512k-1m`` (``0-4k``/``1m+`` outside)."""
    for lo, hi in BINS:
        if lo <= n_tokens < hi:
            return f"{_k(lo)}-{_k(hi)}"
    return "0-4k" if n_tokens < BINS[0][0] else "1m+"


def ordinal(n: int) -> str:
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


def sample_budget(answer_tokens: int) -> int:
    """``max_new_tokens`` for an answer of ``answer_tokens``: the task budget, or more for a long answer."""
    return max(MRCRTask.answer_budget, answer_tokens + answer_tokens // 4 + 16)


def final_ask(prefix: str, index: int, ask: Ask) -> str:
    return (f"Prepend {prefix} to the {ordinal(index)} (1 indexed) {ask.form} about {ask.topic}. "
            "Do not include any other text in your response.")


@dataclass(frozen=True)
class MRCRConfig:
    n_needles: int
    prefix_chars: int = 10


@dataclass
class _Pair:
    ask: str
    reply: str
    ask_tokens: int
    reply_tokens: int

    def cost(self, overhead: int) -> int:
        return self.ask_tokens + self.reply_tokens + 2 * overhead


@dataclass
class _Needles:
    """The repeated ask, its replies, and the question and answer built on them (with token counts)."""

    ask: Ask
    replies: list[str]
    ask_tokens: int
    reply_tokens: list[int]
    prefix: str
    index: int
    question: str
    question_tokens: int
    answer: str
    max_new: int

    def haystack_budget(self, ctx: int, overhead: int) -> int:
        """Tokens left for haystack pairs once the needles, question, template and answer are paid."""
        needles = sum(self.ask_tokens + r + 2 * overhead for r in self.reply_tokens)
        return ctx - self.max_new - needles - self.question_tokens - overhead


class _PairStream:
    """Haystack turn pairs for one sample, drawn in chunks and tokenized once per chunk."""

    def __init__(self, rng: random.Random, pool: tuple[str, ...], needle: Ask, seen: set[str], tok: Tokenizer):
        self.rng, self.pool, self.needle, self.seen, self.tok = rng, pool, needle, seen, tok

    def _ask(self) -> Ask:
        r = self.rng
        while True:  # ~30 % share the needle's form or topic, so the needle asks do not stand out
            roll = r.random()
            form = self.needle.form if roll < 0.15 else r.choice(FORMS)
            topic = self.needle.topic if 0.15 <= roll < 0.3 else r.choice(self.pool)
            if (form, topic) != (self.needle.form, self.needle.topic):
                return Ask(form, topic, r.randrange(5))

    def chunk(self) -> list[_Pair]:
        texts: list[tuple[str, str]] = []
        while len(texts) < _CHUNK:
            ask = self._ask()
            reply = write_reply(ask, self.rng)
            if reply not in self.seen:
                self.seen.add(reply)
                texts.append((ask.text(), reply))
        ids = self.tok.encode_batch([t for pair in texts for t in pair])
        return [_Pair(a, r, len(ids[2 * j]), len(ids[2 * j + 1])) for j, (a, r) in enumerate(texts)]


class MRCRTask:
    """``mrcr_{n}needle``: recall the i-th of n identical asks' replies in a long conversation."""

    version = "2"
    metric = "mrcr"
    answer_budget = 512

    def __init__(self, config: MRCRConfig):
        self.config = config
        self.name = f"mrcr_{config.n_needles}needle"
        self.description = (f"MRCR: {config.n_needles} identical writing asks hidden in a long conversation; "
                            "prepend a hash to the i-th reply (graded by SequenceMatcher)")

    multi_turn = True

    def generate(self, ctx: int, n: int, seed: int, tokenizer: Tokenizer, split: Split = "eval",
                 overhead: int = 0, turn_overhead: int | None = None) -> Iterator[Sample]:
        per = overhead if turn_overhead is None else turn_overhead
        for i in range(n):
            yield self._sample(ctx, seed, i, tokenizer, split, per, max(0, overhead - per))

    def _needles(self, ctx: int, rng: random.Random, pool: tuple[str, ...], tok: Tokenizer, overhead: int) -> _Needles:
        """The repeated ask, its distinct replies and the final question; short forms when ctx is small."""
        prefix = "".join(rng.choice(_ALPHABET) for _ in range(self.config.prefix_chars))
        index = rng.randint(1, self.config.n_needles)
        for forms in (FORMS, _SHORT_FORMS):
            ask = Ask(rng.choice(forms), rng.choice(pool), rng.randrange(5))
            replies: list[str] = []
            while len(replies) < self.config.n_needles:
                r = write_reply(ask, rng)
                if r not in replies:
                    replies.append(r)
            question = final_ask(prefix, index, ask)
            answer = prefix + replies[index - 1]
            counts = [len(x) for x in tok.encode_batch([ask.text(), question, answer, *replies])]
            max_new = sample_budget(counts[2])
            needles = _Needles(ask, replies, counts[0], counts[3:], prefix, index, question, counts[1], answer, max_new)
            if needles.haystack_budget(ctx, overhead) >= ctx // 2:
                break
        return needles

    def _sample(self, full_ctx: int, seed: int, i: int, tok: Tokenizer, split: Split, overhead: int, fixed: int) -> Sample:
        """``overhead``: template tokens per message; ``fixed``: tokens the template adds once."""
        ctx = full_ctx - fixed
        rng = random.Random(f"{self.name}|{full_ctx}|{seed}|{i}")
        pool = topics(split)
        nd = self._needles(ctx, rng, pool, tok, overhead)
        budget = nd.haystack_budget(ctx, overhead)
        if budget <= 0:
            raise TaskError(f"ctx {ctx} is too small for {self.name}: its {self.config.n_needles} needle turns, "
                            f"question and {nd.max_new}-token answer budget need more; use a larger --ctx")
        hay = self._haystack(rng, pool, nd, tok, budget, overhead, ctx)
        messages, turn_tokens, needle_turns = _interleave(rng, hay, nd)
        prompt_tokens = sum(turn_tokens)
        spent = prompt_tokens + overhead * len(messages) + nd.max_new
        if not ctx - tolerance(ctx) <= spent <= ctx:
            raise TaskError(f"{self.name} at ctx {ctx}: sized to {spent} tokens, outside the tolerance; please report")
        meta = {
            "bin": token_bin(prompt_tokens), "n_needles": len(nd.replies), "desired_index": nd.index,
            "random_prefix": nd.prefix, "needle_ask": nd.ask.text(), "form": nd.ask.form, "topic": nd.ask.topic,
            "needle_turns": needle_turns, "needle_positions": [sum(turn_tokens[:t]) for t in needle_turns],
            "desired_turn": needle_turns[nd.index - 1], "n_messages": len(messages),
            "overhead_per_message": overhead, "overhead_fixed": fixed, "seed": seed, "version": self.version, "split": split,
        }
        return make_sample(id=f"{self.name}-{full_ctx}-{seed}-{i}", task=self.name, ctx=full_ctx, tokenizer=tok.name,
                           answers=[nd.answer], metric=self.metric, max_new_tokens=nd.max_new,
                           prompt_tokens=prompt_tokens, messages=messages, answer_prefix="", meta=meta)

    def _haystack(self, rng: random.Random, pool: tuple[str, ...], nd: _Needles, tok: Tokenizer,
                  budget: int, overhead: int, ctx: int) -> list[_Pair]:
        """Whole pairs by cumulative count, then one reply cut to land within tolerance of ``budget``."""
        seen = set(nd.replies)
        stream = _PairStream(rng, pool, nd.ask, seen, tok)
        pairs: list[_Pair] = []
        while sum(p.cost(overhead) for p in pairs) <= budget:
            pairs += stream.chunk()
        costs = [p.cost(overhead) for p in pairs]
        table = UnitTable([p.reply for p in pairs], costs, list(accumulate(costs)))
        k = table.take(budget)
        used, spare = pairs[:k], pairs[k:]
        gap = budget - table.tokens(k)
        tol = tolerance(ctx)
        cut_pairs: list[_Pair] = []
        while gap > tol and spare:
            cand = spare.pop(0)
            cut, cut_n = fit_prefix(cand.reply, gap - cand.ask_tokens - 2 * overhead, tok, slack=tol // 2)
            if not cut and used:  # the gap is smaller than one ask: give back a whole pair, cut a reply there
                gap += used.pop().cost(overhead)
                spare.insert(0, cand)
                continue
            if not cut or (cut != cand.reply and cut in seen):
                continue
            pair = _Pair(cand.ask, cut, cand.ask_tokens, cut_n)
            cut_pairs.append(pair)
            gap -= pair.cost(overhead)
        if gap > tol:
            raise TaskError(f"could not fill ctx {ctx} for {self.name} to within {tol} tokens; use a larger --ctx")
        for pair in cut_pairs:  # a cut reply goes to a random place, not always last
            used.insert(rng.randrange(len(used) + 1), pair)
        return used


def _interleave(rng: random.Random, hay: list[_Pair], nd: _Needles) -> tuple[list[dict[str, str]], list[int], list[int]]:
    """The messages (needle pairs at random slots), each message's token count, the needle replies' indices."""
    n_pairs = len(hay) + len(nd.replies)
    slots = set(rng.sample(range(n_pairs), len(nd.replies)))
    hay_iter = iter(hay)
    needle_iter = iter(_Pair(nd.ask.text(), r, nd.ask_tokens, r_n) for r, r_n in zip(nd.replies, nd.reply_tokens))
    messages: list[dict[str, str]] = []
    turn_tokens: list[int] = []
    needle_turns: list[int] = []
    for j in range(n_pairs):
        pair = next(needle_iter) if j in slots else next(hay_iter)
        if j in slots:
            needle_turns.append(len(messages) + 1)
        messages += [{"role": "user", "content": pair.ask}, {"role": "assistant", "content": pair.reply}]
        turn_tokens += [pair.ask_tokens, pair.reply_tokens]
    messages.append({"role": "user", "content": nd.question})
    turn_tokens.append(nd.question_tokens)
    return messages, turn_tokens, needle_turns


MRCR_TASKS: dict[str, Task] = {t.name: t for t in (MRCRTask(MRCRConfig(k)) for k in (2, 4, 8))}
