"""Reference agreement statistics for gleaner's eval tests, computed independently with
statsmodels (Fleiss' kappa) and krippendorff (Krippendorff's alpha), plus plain Python
for pairwise and majority agreement. Writes tests/fixtures/agreement.json.

    python3 -m venv /tmp/agree && /tmp/agree/bin/pip install statsmodels krippendorff numpy
    /tmp/agree/bin/python scripts/eval_agreement_fixtures.py

Votes are coded 0 = lose (A better), 1 = tie, 2 = win (B better); None = missing.
Rows are annotators, columns items.
"""
import itertools
import json
import random
from pathlib import Path

import krippendorff
import numpy as np
from statsmodels.stats.inter_rater import aggregate_raters, fleiss_kappa

random.seed(7)
big = [[random.choice([0, 1, 2, 2, 2]) for _ in range(60)] for _ in range(3)]
for j in range(60):  # annotators follow a shared truth most of the time
    truth = big[0][j]
    for a in (1, 2):
        if random.random() < 0.7:
            big[a][j] = truth

TABLES = {
    "mixed": [
        [2, 2, 1, 0, 2, 2, 1, 2, 0, 2, 2, 1],
        [2, 1, 1, 0, 2, 2, 2, 2, 0, 1, 2, 1],
        [2, 2, 0, 0, 2, 1, 1, 2, 1, 2, 2, 2],
    ],
    "perfect": [
        [2, 0, 1, 2, 2, 0],
        [2, 0, 1, 2, 2, 0],
        [2, 0, 1, 2, 2, 0],
    ],
    "all_ties": [[1] * 5, [1] * 5, [1] * 5],
    "missing": [
        [2, 2, None, 0, 2, 1, 2, None],
        [2, 1, 1, 0, None, 1, 2, 2],
        [None, 2, 1, 0, 2, 0, 2, 2],
    ],
    "four_annotators": [
        [2, 2, 1, 0, 2, 1, 0],
        [2, 1, 1, 0, 2, 2, 0],
        [2, 2, 1, 1, 2, 1, 0],
        [1, 2, 1, 0, 2, 1, 2],
    ],
    "seeded_60": big,
}


def fleiss(table):
    items = [col for col in zip(*table) if all(v is not None for v in col)]
    if not items:
        return None
    counts, _ = aggregate_raters(np.array(items), n_cat=3)
    k = fleiss_kappa(counts, method="fleiss")
    return None if np.isnan(k) else float(k)


def alpha(table, level):
    data = np.array([[np.nan if v is None else v for v in row] for row in table], dtype=float)
    try:
        a = krippendorff.alpha(reliability_data=data, level_of_measurement=level, value_domain=[0, 1, 2])
    except ValueError:
        return None
    return None if np.isnan(a) else float(a)


def pairwise(table):
    agree = total = 0
    for a, b in itertools.combinations(range(len(table)), 2):
        for x, y in zip(table[a], table[b]):
            if x is None or y is None:
                continue
            total += 1
            agree += x == y
    return agree / total if total else None


def majority(col):
    votes = [v for v in col if v is not None]
    for c in (0, 1, 2):
        if votes.count(c) * 2 > len(col):
            return c
    return None


def with_majority(table):
    out = []
    cols = list(zip(*table))
    for a in range(len(table)):
        agree = total = 0
        for j, col in enumerate(cols):
            m = majority(col)
            if m is None or table[a][j] is None:
                continue
            total += 1
            agree += table[a][j] == m
        out.append(agree / total if total else None)
    return out


out = {}
for name, table in TABLES.items():
    out[name] = {
        "votes": table,
        "fleiss_kappa": fleiss(table),
        "alpha_nominal": alpha(table, "nominal"),
        "alpha_ordinal": alpha(table, "ordinal"),
        "pairwise_agreement": pairwise(table),
        "agreement_with_majority": with_majority(table),
        "majority": [majority(col) for col in zip(*table)],
    }
path = Path(__file__).resolve().parent.parent / "tests/fixtures/agreement.json"
path.write_text(json.dumps(out, indent=1) + "\n")
print(f"wrote {path}")
