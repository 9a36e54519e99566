"""RULER's question answering over documents: ``qa_1`` (single-hop) and ``qa_2`` (multi-hop).

The gold documents go in at a depth (RULER's 40 depths or the configured one) among distractor
documents drawn from the same pool, numbered "Document 1:", "Document 2:", ... until the budget is
spent; the last distractor is cut to land on the target. The pool is the offline synthetic set
(``tasks.qa_synthetic``) unless ``source`` names a local SQuAD or HotpotQA json file.
"""
from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

from longctx.tasks.prompt_fit import Built, Fitter, Layout, fill_prefix
from longctx.tasks.qa_synthetic import QAPool, external_pool, synthetic_pool
from longctx.tasks.ruler_base import RulerTask, pick_depths
from longctx.tasks.task import Split

INSTRUCTION = ("Answer the question based on the given documents. "
               "Only give me the answer and do not output any other words.")
TEMPLATE = f"{INSTRUCTION}\n\nThe following are given documents.\n\n"
QUESTION = f"\n\n{INSTRUCTION}\n\nQuestion: {{query}}"
ANSWER_PREFIX = " Answer:"
_MAX_POPS = 32  # distractor swaps while the last gap stays under a header and over the tolerance (4 within it)


@dataclass(frozen=True)
class QAConfig:
    hops: int = 1  # 1: qa_1 (SQuAD-like), 2: qa_2 (HotpotQA-like)
    source: str = "synthetic"  # or a path to SQuAD / HotpotQA json
    depth: float | None = None


class QATask(RulerTask):
    config: QAConfig

    def _pool(self, split: Split) -> QAPool:
        return synthetic_pool(split) if self.config.source == "synthetic" else external_pool(self.config.source)

    def prepare(self, rng: random.Random, fitter: Fitter, split: Split, index: int
                ) -> tuple[Layout, list[str], dict[str, Any]]:
        c, count, pool = self.config, fitter.count, self._pool(split)
        items = pool.single if c.hops == 1 else pool.multi
        item = items[rng.randrange(len(items))]
        gold = list(item.gold)
        rng.shuffle(gold)
        others = [i for i in rng.sample(range(len(pool.docs)), min(len(pool.docs), 4000)) if i not in gold]
        bodies = ["\n" + d for d in pool.docs]
        tail = QUESTION.format(query=item.question)
        count.many(bodies)
        fixed = count(TEMPLATE) + count(tail) + count(ANSWER_PREFIX)
        depths = pick_depths(rng, len(gold), c.depth)

        def header(i: int) -> str:
            return f"\n\nDocument {i}:"

        def size(docs: list[int], cut: str) -> int:
            """Tokens of the numbered documents (the first without its leading blank line) and the cut."""
            n = sum(count(header(i + 1)) + count(bodies[d]) for i, d in enumerate(docs))
            if cut:
                n += count(header(len(docs) + 1)) + count(cut)
            return n + count(header(1).lstrip()) - count(header(1))

        def layout(budget: int) -> Built:
            room = budget - fixed
            order: list[int] = []
            cost = 0
            for d in gold + others:
                step = count(header(len(order) + 1)) + count(bodies[d])
                if cost + step > room:
                    if d in gold:
                        raise fitter.too_small(fixed + cost + step)
                    break
                order.append(d)
                cost += step
            distract = order[len(gold):]
            slots = [int(len(distract) * x / 100) for x in depths]
            docs = list(distract)
            for g, s in reversed(list(zip(gold, slots))):
                docs.insert(s, g)
            cut, pops = "", 0
            for nxt in others[len(distract):]:  # fill the gap: whole documents while they fit, then a cut
                gap = room - size(docs, "") - count(header(len(docs) + 1))
                if gap + count(header(len(docs) + 1)) <= fitter.tol // 2:
                    break
                cut = fill_prefix(count, bodies[nxt], gap)
                spare = [i for i, d in enumerate(docs) if d not in gold]
                stuck = gap + count(header(len(docs) + 1)) > fitter.tol  # this gap alone would miss the target
                if not cut and spare and (pops < 4 or stuck and pops < _MAX_POPS):  # no room for a header: free a place
                    docs.pop(spare[-1])
                    pops += 1
                    cut = fill_prefix(count, bodies[nxt], room - size(docs, "") - count(header(len(docs) + 1)))
                if cut != bodies[nxt].rstrip():
                    break
                docs.append(nxt)
                cut = ""
            parts = [header(i + 1) + bodies[d] for i, d in enumerate(docs)]
            if cut:
                parts.append(header(len(docs) + 1) + cut)
            parts[0] = parts[0].lstrip()
            marks, pos, char = [], count(TEMPLATE), len(TEMPLATE)
            for i, part in enumerate(parts):
                if i < len(docs) and docs[i] in gold:
                    marks.append((char, pos))
                pos += count(header(i + 1).lstrip() if i == 0 else header(i + 1))
                pos += count(bodies[docs[i]]) if i < len(docs) else count(cut)
                char += len(part)
            text = TEMPLATE + "".join(parts) + tail
            gold_at = [docs.index(g) + 1 for g in gold]
            return Built(text, ANSWER_PREFIX, fixed + size(docs, cut), marks,
                         {"documents": len(docs), "gold_positions": gold_at})

        meta = {"needles": [pool.docs[g] for g in gold], "depth": depths[0], "depths": depths, "hops": item.hops,
                "source": pool.name, "synthetic": c.source == "synthetic", "question": item.question,
                "gold_titles": [pool.docs[g].split("\n", 1)[0] for g in gold]}
        return layout, list(item.answers), meta
