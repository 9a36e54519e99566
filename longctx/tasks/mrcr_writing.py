"""Offline writer of MRCR's conversation turns: user asks for a piece of writing, assistant replies.

An ask is a *form* (poem, short story, blog post, riddle, email, essay, song, social media post,
letter, speech, diary entry, product review) about a *topic* (``tapirs``, ``a lighthouse keeper``).
Each reply is composed from sentence and line templates filled from word pools with a seeded
``random.Random``: replies of one form share their shape and voice (so MRCR's needles look like
the haystack around them) while their wording differs from one reply to the next.

Topics are split ``eval``/``train`` by ``tasks.vocab.split_of``, so a model trained on ``train``
conversations never saw an ``eval`` topic.

    rng = random.Random("mrcr_2needle|4096|0|0")
    ask = Ask("poem", "tapirs"); reply = write_reply(ask, rng)
"""
from __future__ import annotations

import random
import re
from dataclasses import dataclass
from functools import lru_cache

from longctx.tasks import vocab
from longctx.tasks.task import Split

FORMS: tuple[str, ...] = (
    "poem", "short story", "blog post", "riddle", "email", "essay", "song", "social media post",
    "letter", "speech", "diary entry", "product review",
)

_TOPICS = """
tapirs|lighthouses|the first snow of winter|a lost umbrella|owls|rainy Tuesdays|a lighthouse keeper|
bicycles|the smell of bread|old maps|city pigeons|a broken clock|sailing at night|honeybees|
a forgotten birthday|volcanoes|the last train home|paper cranes|a stubborn cat|desert roads|
grandmother's kitchen|thunderstorms|a rooftop garden|jellyfish|moving to a new city|chess|
autumn leaves|a quiet library|submarines|the northern lights|street musicians|a lemon tree|
penguins|an abandoned factory|learning to swim|fireflies|a mountain cabin|coffee|the moon landing|
a sleepy village|glaciers|a runaway balloon|octopuses|the county fair|lanterns|a secret tunnel|
wolves|morning fog|a violin|the harbor at dawn|hedgehogs|a haunted piano|canyons|tea ceremonies|
a wedding in the rain|comets|a small bakery|kites|the deep ocean|marathon runners|
an old typewriter|foxes|a summer storm|the subway at midnight|sunflowers|a lost letter|
elephants|a snowed-in weekend|clockmakers|a red bicycle|the edge of the world|dragonflies|
a first job|river otters|a night market|the desert at noon|whales|a tiny island|an attic|
blacksmiths|spring cleaning|a travelling circus|the color blue|hummingbirds|a rusty key|
a busy airport|lobsters|a treehouse|the silence after rain|mushrooms|a wandering poet|
bridges|the smell of pine|a missing sock|astronauts|a garden gnome|salt marshes|a long winter|
a music box|giraffes|the town square|a paper boat|seahorses|a lighthouse storm|
an empty stadium|porcupines|a cup of cocoa|the last day of school|ravens|a sandcastle|
windmills|a mountain pass|a neighbor's dog|lost languages|a glass of lemonade|crickets|
a flooded street|the farmers market|a violin maker|polar bears|a stolen painting|meadows|
an ice cream truck|a quiet harbor|bats|the invention of the wheel|a dusty bookshop|tortoises|
a thunderous waterfall|a first snowfall in the city|a fishing village|koalas|a midnight snack|
a clock tower|the Sahara|rain on a tin roof|a cello|the school play|peacocks|a ghost ship|
a vegetable patch|snails|an autumn fair|a forgotten song|camels|a mountain lake|a pocket watch|
a road trip|sea turtles|the city at dawn|a greenhouse|a rocking chair|beavers|a stormy sea|
a kindergarten class|lighthouse beams|a weathervane|a jazz club|squirrels|an old bridge|
a lunar eclipse|flamingos|a carousel|the village well|a sourdough starter|moths|a paper lantern|
a desert oasis|hot air balloons|a lonely robot|the tide pools|woodpeckers|a cathedral|
a picnic in the park|salamanders|a snow globe|the harvest moon|a locksmith|a coral reef
"""


@dataclass(frozen=True)
class Ask:
    """One user request: ``form`` about ``topic``; ``phrasing`` picks the wording of the ask."""

    form: str
    topic: str
    phrasing: int = 0

    def text(self) -> str:
        article = "an" if self.form[0] in "aeiou" else "a"
        templates = (
            f"Write {article} {self.form} about {self.topic}.",
            f"Could you write {article} {self.form} about {self.topic}?",
            f"Please write {article} {self.form} about {self.topic}.",
            f"I'd love {article} {self.form} about {self.topic}.",
            f"Can you give me {article} {self.form} about {self.topic}?",
        )
        return templates[self.phrasing % len(templates)]


@lru_cache(maxsize=None)
def topics(split: Split) -> tuple[str, ...]:
    """The topics of ``split`` (disjoint from the other split's by ``vocab.split_of``)."""
    every = [t.strip() for t in _TOPICS.replace("\n", "").split("|") if t.strip()]
    return tuple(t for t in every if vocab.split_of(t) == vocab.check_split(split))


_NAMES = ("Mara", "Theo", "Ines", "Jonah", "Priya", "Oskar", "Lena", "Tomas", "Amara", "Felix", "Noor",
          "Elias", "Sofia", "Rafael", "Hana", "Milo", "Clara", "Idris", "Nell", "Arturo")
_PLACES = ("by the river", "at the edge of town", "under the old bridge", "in a crowded kitchen",
           "on a windy hill", "behind the station", "in the back of a bus", "near the harbor",
           "in a narrow street", "at the top of the stairs", "in a field of tall grass", "beside the road")
_TIMES = ("at dawn", "after midnight", "in early spring", "on a grey afternoon", "at the end of summer",
          "in the middle of winter", "just before the rain", "long after supper", "on a Sunday morning")
_FEELINGS = ("wonder", "quiet joy", "a small ache", "curiosity", "relief", "longing", "gratitude",
             "surprise", "calm", "nostalgia", "hope", "restlessness")
_LIGHT = ("silver", "amber", "pale", "golden", "blue", "soft", "dim", "bright", "copper", "misty")
_SIGNOFF = ("Warm regards", "Best wishes", "All the best", "Kind regards", "Cheers", "Yours truly")


@lru_cache(maxsize=None)
def _pool(kind: str) -> tuple[str, ...]:
    """Filler words of both splits (filler is not a key or a value, so the split does not apply)."""
    get = {"adj": vocab.adjectives, "noun": vocab.nouns, "verb": vocab.verbs}[kind]
    return get("eval") + get("train")


_SLOTS = {
    "name": lambda: _NAMES, "friend": lambda: _NAMES, "place": lambda: _PLACES, "time": lambda: _TIMES,
    "feeling": lambda: _FEELINGS, "light": lambda: _LIGHT, "adj": lambda: _pool("adj"), "adj2": lambda: _pool("adj"),
    "noun": lambda: _pool("noun"), "noun2": lambda: _pool("noun"), "verb": lambda: _pool("verb"),
    "verb2": lambda: _pool("verb"), "n": lambda: tuple(str(k) for k in range(2, 41)),
}


class _Slots(dict):
    """Template slots drawn on first use, in the order the template names them (deterministic)."""

    def __init__(self, rng: random.Random, topic: str = ""):
        super().__init__(topic=topic)
        self.rng = rng

    def __missing__(self, key: str) -> str:
        value = self[key] = self.rng.choice(_SLOTS[key]())
        return value


_AN = re.compile(r"\b([Aa]) ([aeiou])")


def _fill(rng: random.Random, templates: tuple[str, ...], topic: str) -> str:
    s = _AN.sub(r"\1n \2", rng.choice(templates).format_map(_Slots(rng, topic)))
    return s[0].upper() + s[1:]


_LINES = (
    "{light} light falls on {topic} {time}", "and the {adj} {noun} remembers {feeling}",
    "I hear {topic} {place}", "a {noun} of {light} and {noun2}", "where {topic} {verb} without a sound",
    "the wind returns {time}", "and every {noun} is {adj}", "{topic}, {adj} and {adj2}",
    "we {verb} the {noun} and call it {feeling}", "a {light} song {place}", "still {topic} waits {time}",
    "the {noun2} leans close to hear", "nothing {adj2} is ever lost", "{feeling} in the shape of a {noun}",
)
_PROSE = (
    "{name} first noticed {topic} {place}, {time}.", "It was {adj}, in the way a {noun} is {adj}.",
    "Nobody could say why {topic} mattered so much, but everyone felt {feeling}.",
    "{name} decided to {verb} the {noun} before anyone else woke up.",
    "{friend} laughed and said that {topic} would never {verb2} again.",
    "The {noun2} on the table was {adj2}, and that seemed important.",
    "By then the light had turned {light}, and the street was quiet.",
    "There is something about {topic} that makes people slow down.",
    "Most of us {verb} without thinking about it, {time}.",
    "Here is the strange part: the {noun} was exactly where {name} had left it.",
    "It takes {n} minutes to understand {topic}, and a lifetime to stop thinking about it.",
    "I keep coming back to {topic} {place}.", "That feeling of {feeling} stayed for days.",
    "If you ever {verb2} a {noun}, you will know what I mean.",
)
_CLUES = (
    "I {verb} but never {verb2}.", "You find me {place}, {time}.", "I am {adj} yet never {adj2}.",
    "Give me a {noun} and I will give you {feeling}.", "I have {n} {noun}s and not one {noun2}.",
    "I am lighter than a {noun} but no one can hold me long.",
)
_HASHTAGS = ("#weekend", "#thoughts", "#nofilter", "#dailylife", "#goodvibes", "#mood", "#story", "#inspo")


def _poem(topic: str, rng: random.Random) -> str:
    stanzas = ["\n".join(_fill(rng, _LINES, topic) for _ in range(rng.randint(3, 4))) for _ in range(rng.randint(2, 4))]
    return "\n\n".join(stanzas)


def _song(topic: str, rng: random.Random) -> str:
    chorus = "\n".join(_fill(rng, _LINES, topic) for _ in range(2))
    parts = []
    for v in range(rng.randint(2, 3)):
        parts.append(f"Verse {v + 1}:\n" + "\n".join(_fill(rng, _LINES, topic) for _ in range(3)))
        parts.append("Chorus:\n" + chorus)
    return "\n\n".join(parts)


def _paragraphs(topic: str, rng: random.Random, k: tuple[int, int], m: tuple[int, int]) -> list[str]:
    return [" ".join(_fill(rng, _PROSE, topic) for _ in range(rng.randint(*m))) for _ in range(rng.randint(*k))]


def _story(topic: str, rng: random.Random) -> str:
    return "\n\n".join(_paragraphs(topic, rng, (3, 4), (3, 4)))


def _essay(topic: str, rng: random.Random) -> str:
    body = _paragraphs(topic, rng, (2, 3), (3, 4))
    return "\n\n".join([f"On {topic}", *body, "In the end, " + _fill(rng, _PROSE, topic).lower()[:-1] + "."])


def _blog(topic: str, rng: random.Random) -> str:
    title = f"{rng.choice(('Why', 'How', 'What'))} {topic} {rng.choice(('changed my week', 'taught me patience', 'still surprises me', 'deserves a second look'))}"
    return "\n\n".join([title, *_paragraphs(topic, rng, (2, 3), (2, 4)), "Thanks for reading!"])


def _riddle(topic: str, rng: random.Random) -> str:
    clues = "\n".join(_fill(rng, _CLUES, topic) for _ in range(rng.randint(3, 5)))
    return f"{clues}\nWhat am I?\n\nAnswer: {topic}."


def _email(topic: str, rng: random.Random, label: str = "Subject") -> str:
    w = _Slots(rng)
    head = f"{label}: {topic[0].upper() + topic[1:]}\n\n" if label else ""
    body = "\n\n".join(_paragraphs(topic, rng, (1, 2), (2, 3)))
    return f"{head}Dear {w['friend']},\n\n{body}\n\n{rng.choice(_SIGNOFF)},\n{w['name']}"


def _post(topic: str, rng: random.Random) -> str:
    text = " ".join(_fill(rng, _PROSE, topic) for _ in range(rng.randint(1, 2)))
    tags = " ".join(rng.sample(_HASHTAGS, 2) + ["#" + topic.replace(" ", "").replace("'", "")])
    return f"{text} {tags}"


def _speech(topic: str, rng: random.Random) -> str:
    opening = f"{rng.choice(('Friends', 'Neighbors', 'Good evening, everyone', 'Dear guests'))}, thank you for coming tonight to talk about {topic}."
    return "\n\n".join([opening, *_paragraphs(topic, rng, (2, 3), (2, 3)), "Thank you."])


def _diary(topic: str, rng: random.Random) -> str:
    day = rng.choice(("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"))
    return f"Dear diary, {day}.\n\n" + "\n\n".join(_paragraphs(topic, rng, (2, 3), (2, 3)))


def _review(topic: str, rng: random.Random) -> str:
    stars = rng.randint(2, 5)
    return f"Rating: {stars} out of 5\n\n" + "\n\n".join(_paragraphs(topic, rng, (2, 3), (2, 3)))


_WRITERS = {
    "poem": _poem, "short story": _story, "blog post": _blog, "riddle": _riddle, "email": _email,
    "essay": _essay, "song": _song, "social media post": _post, "speech": _speech, "diary entry": _diary,
    "product review": _review, "letter": lambda t, r: _email(t, r, label=""),
}


def write_reply(ask: Ask, rng: random.Random) -> str:
    """The assistant's reply to ``ask``: a piece of writing of that form about that topic."""
    return _WRITERS[ask.form](ask.topic, rng)
