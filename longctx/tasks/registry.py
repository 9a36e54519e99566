"""Every task by name, and the groups a user can ask for (``ruler``, ``mrcr``, ``decay``, ``all``)."""
from __future__ import annotations

import difflib

from longctx.tasks.decay import DECAY_TASKS
from longctx.tasks.errors import TaskError
from longctx.tasks.mqar import MQAR_TASKS
from longctx.tasks.mrcr import MRCR_TASKS
from longctx.tasks.mrcr_official import OfficialMRCRTask
from longctx.tasks.ruler import DATA_VS_RULER, RULER_TASKS
from longctx.tasks.task import Task

# tasks that read a user's files (run them by name, with --set path=...): in no group
USER_DATA_TASKS: dict[str, Task] = {"mrcr_official": OfficialMRCRTask()}

# MQAR (Zoology's recall probe) is in the catalog but in no group: `evals run mqar` names it
TASKS: dict[str, Task] = {**RULER_TASKS, **MRCR_TASKS, **DECAY_TASKS, **MQAR_TASKS, **USER_DATA_TASKS}

GROUPS: dict[str, list[str]] = {
    "ruler": list(RULER_TASKS),
    "mrcr": list(MRCR_TASKS),
    "decay": list(DECAY_TASKS),
    "all": [*RULER_TASKS, *MRCR_TASKS, *DECAY_TASKS],
}


def data_vs_ruler(name: str) -> str:
    """How a RULER task's default data differs from RULER's own ("" for tasks outside RULER)."""
    return DATA_VS_RULER.get(name, "")


def get_task(name: str) -> Task:
    try:
        return TASKS[name]
    except KeyError:
        raise TaskError(f"unknown task {name!r}{_suggest(name)}; `evals tasks` lists them") from None


def resolve(spec: str | list[str]) -> list[str]:
    """``'ruler'``, ``'niah_single_1,vt'`` or a list of names/groups -> task names, in order, once each."""
    parts = spec.split(",") if isinstance(spec, str) else list(spec)
    out: list[str] = []
    for part in (p.strip() for p in parts):
        if not part:
            continue
        names = GROUPS[part] if part in GROUPS else [get_task(part).name]
        out.extend(n for n in names if n not in out)
    if not out:
        raise TaskError("no task given: name a task, a group (ruler, mrcr, decay, all) or a comma list")
    return out


def _suggest(name: str) -> str:
    close = difflib.get_close_matches(name, [*TASKS, *GROUPS], n=1, cutoff=0.5)
    return f" (did you mean {close[0]!r}?)" if close else ""
