"""Seeded splits of one's own data: whole groups (speaker, recording, location) to train/validation/test,
with each split's class proportions as close as the groups allow to the requested fractions.

Greedy, in the manner of scikit-learn's StratifiedGroupKFold: groups are taken largest first (ties in an order
drawn from the seed by a stable hash, the same on every machine), and each goes to the split whose per-class
counts it brings closest to their targets (fraction x class total; the smallest increase of the squared error).
Before that, every split with a positive fraction receives one group while there are groups left, so no split is
empty when there are at least as many groups as splits. A group is never cut: no group is on both sides.
"""
from __future__ import annotations

from collections import Counter

from soundbench.datasets.common import stable_unit
from soundbench.manifest import SPLITS, ManifestError


def grouped_stratified(groups: list[str], labels: list[list[str]], fractions: dict[str, float],
                       seed: int = 0) -> list[str]:
    """The split of each clip. groups[i]: clip i's group ("" = the clip is its own group); labels[i]: its
    classes (several for multi-label clips, each counted). fractions: {split: fraction}, normalised."""
    unknown = sorted(set(fractions) - set(SPLITS))
    if unknown:
        raise ManifestError(f"split fractions name unknown splits {unknown}; known: {', '.join(SPLITS)}")
    # the canonical order, not the mapping's: a fraction dict in any key order (YAML, sorted JSON) gives one split
    names = [s for s in SPLITS if fractions.get(s, 0) > 0]
    total = sum(fractions[s] for s in names)
    if not names or total <= 0:
        raise ManifestError(f"split fractions {fractions} select nothing")
    share = {s: fractions[s] / total for s in names}
    keys = [g if g else f"\x00clip{i}" for i, g in enumerate(groups)]
    members: dict[str, list[int]] = {}
    for i, k in enumerate(keys):
        members.setdefault(k, []).append(i)
    per_group = {k: Counter(lab for i in idx for lab in (labels[i] or ["\x00unlabelled"]))
                 for k, idx in members.items()}
    class_total: Counter = Counter()
    for c in per_group.values():
        class_total.update(c)
    target = {s: {c: share[s] * n for c, n in class_total.items()} for s in names}
    count: dict[str, Counter] = {s: Counter() for s in names}
    order = sorted(members, key=lambda k: (-len(members[k]), stable_unit(k, f"split-seed-{seed}"), k))
    position = {k: i for i, k in enumerate(order)}

    def cost_increase(s: str, k: str) -> float:
        return sum((count[s][c] + n - target[s][c]) ** 2 - (count[s][c] - target[s][c]) ** 2
                   for c, n in per_group[k].items())

    assign: dict[str, str] = {}
    # the splits asking for least first get one group each, the group that suits them best
    for s in sorted(names, key=lambda s: (share[s], names.index(s))):
        free = [k for k in order if k not in assign]
        if not free:
            break
        k = min(free, key=lambda k: (cost_increase(s, k), position[k]))
        assign[k] = s
        count[s].update(per_group[k])
    for k in order:
        if k in assign:
            continue
        s = min(names, key=lambda s: (cost_increase(s, k), names.index(s)))
        assign[k] = s
        count[s].update(per_group[k])
    return [assign[k] for k in keys]
