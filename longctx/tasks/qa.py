"""RULER's question answering over documents: ``qa_1`` (single-hop) and ``qa_2`` (multi-hop).

RULER's template and layout: "Document 1:", "Document 2:", ... each on its own line before its text,
documents separated by a blank line, the gold documents at uniformly random places among distractors
drawn from the same pool (as RULER's shuffle puts them; a configured ``depth`` places them there).
Documents are whole: the list grows until the next one would pass the budget, and later ones that
still fit close the gap. The pool is the offline synthetic set
(``tasks.qa_synthetic``) unless ``source`` names a local SQuAD or HotpotQA json file.
"""
from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

from longctx.tasks.prompt_fit import Built, Fitter, Layout
from longctx.tasks.qa_synthetic import QAPool, external_pool, synthetic_pool
from longctx.tasks.ruler_base import RulerTask, pick_depths
from longctx.tasks.task import Split

INSTRUCTION = ("Answer the question based on the given documents. "
               "Only give me the answer and do not output any other words.")
TEMPLATE = f"{INSTRUCTION}\n\nThe following are given documents.\n\n"
QUESTION = f"\n\n{INSTRUCTION}\n\nQuestion: {{query}}"
ANSWER_PREFIX = " Answer:"
_FILL_TRIES = 256  # later documents tried for the last gap once one does not fit


@dataclass(frozen=True)
class QAConfig:
    hops: int = 1  # 1: qa_1 (SQuAD-like), 2: qa_2 (HotpotQA-like)
    source: str = "synthetic"  # or a path to SQuAD / HotpotQA json
    depth: float | None = None


class QATask(RulerTask):
    config: QAConfig
    version = "2"

    def _pool(self, split: Split) -> QAPool:
        return synthetic_pool(split) if self.config.source == "synthetic" else external_pool(self.config.source)

    def prepare(self, rng: random.Random, fitter: Fitter, split: Split, index: int
                ) -> tuple[Layout, list[str], dict[str, Any]]:
        c, count, pool = self.config, fitter.count, self._pool(split)
        items = pool.single if c.hops == 1 else pool.multi
        item = items[rng.randrange(len(items))]
        gold = list(item.gold)
        rng.shuffle(gold)
        related = [d for d in item.related if d not in gold]
        rng.shuffle(related)
        others = related + [i for i in rng.sample(range(len(pool.docs)), min(len(pool.docs), 4000))
                            if i not in gold and i not in item.related]
        bodies = ["\n" + d for d in pool.docs]
        tail = QUESTION.format(query=item.question)
        count.many(bodies)
        fixed = count(TEMPLATE) + count(tail) + count(ANSWER_PREFIX)
        if c.depth is None:  # RULER shuffles the gold documents in among the others: uniform positions
            draw = rng.random()
            slots = lambda k: sorted(random.Random(draw).choices(range(k + 1), k=len(gold)))  # noqa: E731
        else:
            depths = pick_depths(rng, len(gold), c.depth)
            slots = lambda k: [int(k * x / 100) for x in depths]  # noqa: E731

        def header(i: int) -> str:
            return f"\n\nDocument {i}:"

        def size(docs: list[int]) -> int:
            """Tokens of the numbered documents (the first without its leading blank line)."""
            n = sum(count(header(i + 1)) + count(bodies[d]) for i, d in enumerate(docs))
            return n + count(header(1).lstrip()) - count(header(1))

        def layout(budget: int) -> Built:
            room = budget - fixed
            order: list[int] = []
            cost, misses, smallest = 0, 0, 0
            for d in gold + others:  # whole documents; once one does not fit, later ones that do close the gap
                step = count(header(len(order) + 1)) + count(bodies[d])
                if cost + step > room:
                    if d in gold:
                        raise fitter.too_small(fixed + cost + step)
                    smallest = step if not misses else min(smallest, step)
                    misses += 1
                    if misses > _FILL_TRIES:
                        break
                    continue
                order.append(d)
                cost += step
                if room - cost <= fitter.tol // 2:
                    break
            distract = order[len(gold):]
            docs = list(distract)
            for g, s in reversed(list(zip(gold, slots(len(distract))))):
                docs.insert(s, g)
            parts = [header(i + 1) + bodies[d] for i, d in enumerate(docs)]
            parts[0] = parts[0].lstrip()
            marks, pos, char = [], count(TEMPLATE), len(TEMPLATE)
            for i, part in enumerate(parts):
                if docs[i] in gold:
                    marks.append((char, pos))
                pos += count(header(i + 1).lstrip() if i == 0 else header(i + 1)) + count(bodies[docs[i]])
                char += len(part)
            text = TEMPLATE + "".join(parts) + tail
            gold_at = [docs.index(g) + 1 for g in gold]
            extra: dict[str, Any] = {"documents": len(docs), "gold_positions": gold_at, "fill_unit_tokens": smallest}
            if c.depth is None:
                at = [round(100 * (p - 1) / max(len(docs) - 1, 1), 1) for p in gold_at]
                extra.update(depths=at, depth=at[0])
            return Built(text, ANSWER_PREFIX, fixed + size(docs), marks, extra)

        meta = {"needles": [pool.docs[g] for g in gold], "hops": item.hops,
                **({} if c.depth is None else {"depth": c.depth, "depths": [c.depth] * len(gold)}),
                "source": pool.name, "synthetic": c.source == "synthetic", "question": item.question,
                "gold_titles": [pool.docs[g].split("\n", 1)[0] for g in gold]}
        return layout, list(item.answers), meta
