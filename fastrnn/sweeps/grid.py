"""What a sweep is: its fixed options and its grid, checked, and the combinations to run.

Every value is checked by the rule :class:`~fastrnn.training.TrainingConfig`
applies to it (:data:`~fastrnn.training.config.OPTION_CHECKS`), so a sweep
refuses before it starts what a trial would refuse hours later.
"""

import math
from random import Random

from fastrnn._limits import MAX_TRIALS, MAX_WORKERS
from fastrnn._validation import check_instance, check_int
from fastrnn.sweeps.results import flag, show
from fastrnn.training.config import OPTION_CHECKS, OPTION_CHOICES, TrainingConfig

__all__ = ["BUDGET_OPTIONS", "check_workers", "check_option", "check_options", "check_grid",
           "combinations", "describe_grid"]

BUDGET_OPTIONS = ("iterations", "time_limit")
"""A trial needs one of these, fixed or in the grid: how long it trains."""


def check_workers(name, value):
    """The number of worker processes of a local cluster: an integer in [1, MAX_WORKERS]."""
    return check_int(name, value, 1, MAX_WORKERS)


def check_option(field, value, name):
    """A training option's value, checked by the rule :class:`TrainingConfig` applies."""
    choices = OPTION_CHOICES.get(field)
    if choices is None:
        return OPTION_CHECKS[field](name, value)
    if not isinstance(value, str) or value not in choices:
        raise ValueError(f"{name} must be one of {list(choices)}, got {value!r}")
    return value


def check_options(options):
    """The fixed options as a dict of checked values by field name."""
    options = check_instance("options", {} if options is None else options, dict)
    known = TrainingConfig.__dataclass_fields__
    unknown = sorted(str(name) for name in options if name not in known)
    if unknown:
        raise ValueError(f"unknown training options: {', '.join(unknown)}")
    return {field: None if value is None and field == "learning_rate"
            else check_option(field, value, field) for field, value in options.items()}


def check_grid(grid, options):
    """The grid as a tuple of ``(field, values)``, each value checked, none repeated."""
    check_instance("grid", grid, dict)
    if not grid:
        raise ValueError("grid must name at least one training option")
    known = TrainingConfig.__dataclass_fields__
    checked = []
    for field, values in grid.items():
        if field not in known:
            raise ValueError(f"grid: unknown training option {field!r}")
        if field in options:
            raise ValueError(f"{field} is both in the grid and a fixed option; give it one way")
        if isinstance(values, (str, bytes)) or not hasattr(values, "__iter__"):
            raise ValueError(f"grid[{field!r}] must be a list of values, got {values!r}")
        values = tuple(check_option(field, v, f"grid[{field!r}]") for v in values)
        if not values:
            raise ValueError(f"grid[{field!r}] must hold at least one value")
        repeated = [v for i, v in enumerate(values) if v in values[:i]]
        if repeated:
            raise ValueError(f"grid[{field!r}] repeats {repeated[0]!r}")
        checked.append((field, values))
    budget = set(BUDGET_OPTIONS) & ({f for f, _ in checked} | set(options))
    if not budget or all(options.get(f, 0) is None for f in budget):
        raise ValueError("give each trial a budget: iterations, time_limit or both, fixed or "
                         "in the grid")
    return tuple(checked)


def combinations(grid, random, seed):
    """The combinations to run, in grid order: every one, or ``random`` drawn with ``seed``."""
    sizes = [len(values) for _, values in grid]
    total = math.prod(sizes)
    if random is None:
        if total > MAX_TRIALS:
            raise ValueError(f"the grid has {total:,} combinations, more than the "
                             f"{MAX_TRIALS:,} trials a sweep runs; draw some with random")
        indices = range(total)
    else:
        random = check_int("random", random, 1, MAX_TRIALS)
        if random > total:
            raise ValueError(f"random is {random} but the grid has only {total} combinations")
        indices = sorted(Random(seed).sample(range(total), random))
    picked = []
    for index in indices:
        picks = []
        for size in reversed(sizes):  # the first option varies slowest, as in itertools.product
            index, pick = divmod(index, size)
            picks.append(pick)
        picked.append({field: values[pick]
                             for (field, values), pick in zip(grid, reversed(picks), strict=True)})
    return picked


def describe_grid(grid):
    """The grid as the command line would give it: ``--hidden-size=64,128 ...``."""
    return " ".join(f"{flag(field)}={','.join(map(show, values))}" for field, values in grid)
