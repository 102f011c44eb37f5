"""A suite's perturbation probes: every (perturbation, severity) cell measured once on the fixed frame set.

Robustness checks, breaking-point searches, the report's degradation curves and its worst frames all read the
same cells, so a severity tried by one is never inferred again for another, and every figure replays from
(frame index, perturbation, severity, seed).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from edgeprobe.harness import perturbations
from edgeprobe.harness import suite as S
from edgeprobe.harness.breaking_point import DEFAULT_GRID, BreakingPoint, find_breaking_point
from edgeprobe.harness.metamorphic import RelationResult, check_relation, evaluate_relations

if TYPE_CHECKING:
    from edgeprobe.agent.suite_session import Session


@dataclass
class Probes:
    """Disagreement of every frame under every (perturbation, severity) measured."""

    clean: list[Any]
    threshold: float
    #: (perturbation, severity) -> disagreement per frame
    cells: dict[tuple[str, float], list[float]] = field(default_factory=dict)
    #: frames whose clean prediction is empty (no box, no foreground): they have nothing to lose
    empty: list[bool] = field(default_factory=list)


def nothing_to_lose(description: dict[str, Any]) -> bool:
    """A detection with no box or a mask with no foreground: "stable" on such a frame means nothing."""
    return description.get("count") == 0 or description.get("foreground") == 0.0


def clean_probes(session: Session) -> Probes:
    """The clean predictions every cell is compared with, and which frames have nothing to lose."""
    clean = [session.predict(image) for image in session.probe_images]
    return Probes(clean=clean, threshold=float(session.adapter.threshold),
                  empty=[nothing_to_lose(session.adapter.describe(c)) for c in clean])


def probe(session: Session, probes: Probes, name: str, severity: float) -> list[float]:
    key = (name, float(severity))
    if key not in probes.cells:
        seed0 = session.loaded.suite.seed
        pert = perturbations.get(name)
        out = []
        for frame, image, clean in zip(session.frames, session.probe_images, probes.clean, strict=True):
            seed = perturbations.derive_seed(seed0, frame.index, name, float(severity))
            perturbed = pert.apply(image, severity, seed)
            out.append(float(session.adapter.disagreement(clean, session.predict(perturbed))))
        probes.cells[key] = out
    return probes.cells[key]


def breaking_point(session: Session, probes: Probes, check: S.BreakingPointCheck) -> BreakingPoint:
    """The breaking-point bracket of one perturbation on the suite's fixed frame set.

    The search is harness.breaking_point's (grid over (0, 5], then bisection in
    the first grid interval that may be broken); the check's ``min_severity`` is
    one more grid look so the verdict has evidence at its limit. Every severity
    tried is cached in ``probes`` and reused by the report's curves. Frames with
    nothing to lose are left out, as in a robustness check: a detector that finds
    nothing "holds" under any perturbation, and that must not read as robust.
    """
    kept = [i for i, empty in enumerate(probes.empty) if not empty]
    if not kept:
        return BreakingPoint.without_evidence(check.threshold, check.confidence, check.tolerance, len(probes.empty))

    def at(sev: float) -> tuple[int, int]:
        d = probe(session, probes, check.perturbation, round(sev, 4))
        return sum(d[i] > probes.threshold for i in kept), len(kept)

    grid = sorted({*DEFAULT_GRID, *([check.min_severity] if check.min_severity > 0 else [])})
    bp = find_breaking_point(at, threshold=check.threshold, confidence=check.confidence, grid=grid,
                             tolerance=check.tolerance, max_rounds=check.max_rounds)
    bp.nothing_to_lose = len(probes.empty) - len(kept)
    return bp


def metamorphic(session: Session, probes: Probes, check: S.MetamorphicCheck) -> RelationResult:
    """Violations of one relation on the frames with something to lose, with what the relation expects.

    Frames whose clean prediction is empty are judged apart: a prediction appearing on one of them under
    the transform is counted (``gained``) and reported, but an empty frame that stays empty is no evidence
    that the relation holds.
    """
    relation = [{"name": check.relation, **check.params}]
    kept = [i for i, empty in enumerate(probes.empty) if not empty]
    left_out = [i for i, empty in enumerate(probes.empty) if empty]

    def on(frames: list[int]) -> RelationResult:
        (r,) = evaluate_relations([session.probe_images[i] for i in frames], session.predict, session.adapter,
                                  relation, clean=[probes.clean[i] for i in frames])
        return r

    gained = on(left_out).violations if left_out else 0
    if not kept:
        check_relation(relation[0], session.adapter)
        return RelationResult(check.relation, 0, 0, check.relation, nothing_to_lose=len(left_out), gained=gained)
    return replace(on(kept), nothing_to_lose=len(left_out), gained=gained)


def worst_frames(session: Session, probes: Probes, count: int) -> list[dict[str, Any]]:
    """Frames that flip at the lowest severity (then the most often), with what replays them."""
    if not probes.cells or count == 0:
        return []
    scores = []
    for i in range(len(session.frames)):
        flips = [(sev, name) for (name, sev), d in probes.cells.items() if d[i] > probes.threshold]
        if flips:
            sev, name = min(flips)
            scores.append((sev, -len(flips), i, name))
    out = []
    for sev, neg_flips, i, name in sorted(scores)[:count]:
        frame = session.frames[i]
        seed = perturbations.derive_seed(session.loaded.suite.seed, frame.index, name, float(sev))
        perturbed = perturbations.apply(name, session.probe_images[i], float(sev), seed)
        before = session.adapter.describe(probes.clean[i])
        after = session.adapter.describe(session.predict(perturbed))
        fname = f"frame-{frame.index:06d}.webp"
        out.append({"frame": frame.index, "perturbation": name, "severity": sev, "seed": seed, "flips": -neg_flips,
                    "before": before, "after": after, "file": fname,
                    "replay": f"edgeprobe perturb {fname} --name {name} --severity {sev:g} --seed {seed} "
                              f"-o {fname[:-5]}-{name}.png",
                    "clean": session.probe_images[i], "perturbed": perturbed})
    return out
