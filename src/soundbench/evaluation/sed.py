"""Sound event detection: frame targets from events, events from frame scores, and event metrics (seed-specs 4.6-4.7).

Events are (onset, offset, label) tuples in seconds. Frame t covers [t*frame_seconds, (t+1)*frame_seconds), so
`frame_targets` and `decode` are inverses up to one frame: decoding snaps onsets down and offsets up to frame edges.

The metrics are sed_eval's, set up as DCASE 2018 Task 4 (and the IJCNN 2019 notebook) scores: event-based with
onset and offset evaluated, a 200 ms collar and an offset tolerance of 20% of the event length, plus segment-based
at 1 s. sed_eval scores one file at a time and never compares file names: pairing reference and estimate per clip
is the caller's job, done here by clip id.
"""
from __future__ import annotations

import math
import warnings

import numpy as np
import pandas as pd

# Frame-edge arithmetic is done in float: an overlap shorter than this fraction of a frame counts as none, so that
# an event ending exactly on a frame edge (k * frame_seconds) does not spill into the next frame.
_EDGE_TOLERANCE = 1e-6


def _check_labels(events, index: dict[str, int], where: str = "") -> None:
    for event in events:
        if event[2] not in index:
            raise ValueError(f"unknown event label {event[2]!r}{where}; classes are {list(index)}")


def frame_targets(events, classes: list[str], n_frames: int, frame_seconds: float) -> np.ndarray:
    """(n_frames, n_classes) float32: 1 where an event of the class overlaps the frame by more than zero time.

    Events running past the last frame are clipped (the clip's features may be shorter than its annotation).
    """
    index = {c: i for i, c in enumerate(classes)}
    _check_labels(events, index)
    y = np.zeros((n_frames, len(classes)), dtype=np.float32)
    for onset, offset, label in events:
        if offset < onset:
            raise ValueError(f"event {(onset, offset, label)} ends before it starts")
        first = max(0, math.floor(onset / frame_seconds + _EDGE_TOLERANCE))
        stop = min(n_frames, math.ceil(offset / frame_seconds - _EDGE_TOLERANCE))
        if stop > first:
            y[first:stop, index[label]] = 1.0
    return y


def decode(frame_probs, thresholds, frame_seconds: float, classes: list[str]) -> list[tuple[float, float, str]]:
    """Events from frame scores (T, C): every run of frames at or above its class threshold is one event.

    onset = first_frame * frame_seconds, offset = (last_frame + 1) * frame_seconds. Smoothing or hysteresis, if any,
    happens before (on the scores). Events are sorted by onset, then class order.
    """
    p = np.asarray(frame_probs, dtype=np.float64)
    if p.ndim != 2 or p.shape[1] != len(classes):
        raise ValueError(f"frame scores of shape {p.shape} do not match (frames, {len(classes)} classes)")
    if not np.isfinite(p).all():
        raise ValueError("frame scores contain NaN or inf")
    thr = np.broadcast_to(np.asarray(thresholds, dtype=np.float64), (len(classes),))
    active = np.zeros((p.shape[0] + 2, p.shape[1]), dtype=np.int8)
    active[1:-1] = p >= thr
    edges = np.diff(active, axis=0)  # +1 at a run's first frame, -1 one past its last frame
    events = []
    for k, label in enumerate(classes):
        starts, stops = np.flatnonzero(edges[:, k] == 1), np.flatnonzero(edges[:, k] == -1)
        events += [(float(a * frame_seconds), float(b * frame_seconds), label, k) for a, b in zip(starts, stops)]
    events.sort(key=lambda e: (e[0], e[3]))
    return [e[:3] for e in events]


def _sed_eval():
    """sed_eval, imported on first use: it imports dcase_util, slow to load and noisy about pkg_resources."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*pkg_resources", category=UserWarning)
        import sed_eval
    return sed_eval


def event_metrics(reference: dict, estimated: dict, classes: list[str], t_collar: float = 0.2,
                  percentage_of_length: float = 0.2, segment_seconds: float = 1.0):
    """Event-based and segment-based scores of estimated events against reference events, clip by clip.

    reference / estimated: clip_id -> list of (onset, offset, label). The evaluated clips are the reference's keys,
    including clips without reference events (their false alarms count against the system). A clip missing from
    `estimated` has no estimated events; an estimated clip without a reference is an error (sed_eval would not
    notice: it matches whatever two lists it is given).

    -> ({f1_event_macro, f1_event_micro, error_rate_event, f1_segment_macro, f1_segment_micro, error_rate_segment},
    per-class DataFrame (class, f1_event, f1_segment, n_ref_events)).
    Macro averages are sed_eval's: the mean over classes with reference events (a class without any has an
    undefined recall, F is NaN and left out, so its false alarms only show in the micro F and the error rate).
    An empty system output scores 0, not NaN ("zero_score", as the DCASE 2018 Task 4 baseline). Without any
    reference events the error rates are NaN (sed_eval would give about 1e16 per false alarm).
    """
    extra = sorted(set(estimated) - set(reference))
    if extra:
        raise ValueError(f"{len(extra)} estimated clip(s) have no reference (e.g. {extra[:3]}); give every "
                         f"evaluated clip a reference entry, an empty list if it has no events")
    index = {c: i for i, c in enumerate(classes)}
    for side, lists in (("reference", reference), ("estimated", estimated)):
        for clip, events in lists.items():
            _check_labels(events, index, f" in {side} clip {clip!r}")

    sed_eval = _sed_eval()
    # sed_eval insists on float parameters (an int collar or segment length raises)
    event_based = sed_eval.sound_event.EventBasedMetrics(
        event_label_list=list(classes), evaluate_onset=True, evaluate_offset=True, t_collar=float(t_collar),
        percentage_of_length=float(percentage_of_length), empty_system_output_handling="zero_score")
    segment_based = sed_eval.sound_event.SegmentBasedMetrics(event_label_list=list(classes),
                                                             time_resolution=float(segment_seconds))
    segment_based.empty_system_output_handling = "zero_score"  # its constructor does not pass the option on

    def as_list(clip, events):
        return [{"filename": str(clip), "event_label": label, "onset": float(on), "offset": float(off)}
                for on, off, label in events]

    for clip, ref in reference.items():
        ref_list, est_list = as_list(clip, ref), as_list(clip, estimated.get(clip, []))
        event_based.evaluate(reference_event_list=ref_list, estimated_event_list=est_list)
        segment_based.evaluate(reference_event_list=ref_list, estimated_event_list=est_list)

    with warnings.catch_warnings():  # no class with reference events: the macro F is NaN, no need to warn
        warnings.filterwarnings("ignore", message="Mean of empty slice", category=RuntimeWarning)
        ev, seg = event_based.results(), segment_based.results()
    scores = {
        "f1_event_macro": ev["class_wise_average"]["f_measure"]["f_measure"],
        "f1_event_micro": ev["overall"]["f_measure"]["f_measure"],
        "error_rate_event": ev["overall"]["error_rate"]["error_rate"],
        "f1_segment_macro": seg["class_wise_average"]["f_measure"]["f_measure"],
        "f1_segment_micro": seg["overall"]["f_measure"]["f_measure"],
        "error_rate_segment": seg["overall"]["error_rate"]["error_rate"],
    }
    per_class = pd.DataFrame({
        "class": list(classes),
        "f1_event": [ev["class_wise"][c]["f_measure"]["f_measure"] for c in classes],
        "f1_segment": [seg["class_wise"][c]["f_measure"]["f_measure"] for c in classes],
        "n_ref_events": [int(ev["class_wise"][c]["count"]["Nref"]) for c in classes],
    })
    # sed_eval divides error counts by Nref + 1e-16: without any reference events that is 1e16 per false alarm
    for key, metric in (("error_rate_event", event_based), ("error_rate_segment", segment_based)):
        if metric.overall["Nref"] == 0:
            scores[key] = np.nan
    return {k: float(v) for k, v in scores.items()}, per_class


# PSDS scenario 1 of DCASE 2021-2024 Task 4 (DESED-era systems report it): intersection-based detection and
# ground-truth criteria 0.7, no cross-trigger term, alpha_st 1 (penalises classes that differ), eFPR up to 100/h
PSDS1 = {"dtc_threshold": 0.7, "gtc_threshold": 0.7, "cttc_threshold": None, "alpha_ct": 0.0, "alpha_st": 1.0,
         "max_efpr": 100.0}


def psds(frames: dict, reference: dict, classes: list[str], frame_seconds: float, scenario: dict = PSDS1) -> float:
    """The Polyphonic Sound Detection Score of frame scores {clip: (frames, classes)} against reference events
    {clip: [(onset, offset, label)]}, threshold-free (sed_scores_eval); clips last frames * frame_seconds.

    Over the classes that have reference events (sed_scores_eval refuses a class without any, as a small subset of
    clips may lack some); NaN when no class has one."""
    from sed_scores_eval import intersection_based
    from sed_scores_eval.base_modules.scores import create_score_dataframe

    present = sorted({lab for c in frames for _, _, lab in reference.get(c, [])}, key=list(classes).index)
    if not present:
        return float("nan")
    keep = [list(classes).index(lab) for lab in present]
    scores = {c: create_score_dataframe(np.asarray(f, dtype=np.float64)[:, keep],
                                        np.arange(len(f) + 1) * frame_seconds, present) for c, f in frames.items()}
    durations = {c: len(f) * frame_seconds for c, f in frames.items()}
    truth = {c: [(float(a), float(b), str(lab)) for a, b, lab in reference.get(c, [])] for c in frames}
    value = intersection_based.psds(scores, truth, durations, **scenario)[0]
    return float(value)
