"""Frame targets, decoding and sed_eval event metrics (seed-specs 4.6-4.7)."""
from __future__ import annotations

import warnings

import numpy as np
import pytest

from soundbench.evaluation import sed

CLASSES = ["cat", "dog", "speech", "bird"]

# Clip "a": four reference events, 200 ms collar, offsets within max(0.2 s, 20% of the event length):
#   dog 1.0-3.0 found at 1.1-3.1 (onset and offset 0.1 s off): hit
#   cat 4.0-6.0 found at 4.15-5.75 (offset 0.25 s off, within 20% of 2 s = 0.4 s): hit
#   dog 7.0-8.0 found at 7.5-8.0 (onset 0.5 s late): a miss and a false alarm (no substitution: that needs the
#   timing to match with another label)
#   speech 8.5-9.5 found at 8.5-9.8 (offset 0.3 s off > max(0.2, 20% of 1 s)): a miss and a false alarm
# Clip "b" has no reference events and one false cat; clip "c" has nothing on either side and changes nothing.
#   micro: Ntp 2, Nsys 5, Nref 4 -> P 2/5, R 1/2, F = 2PR / (P + R) = (2/5) / (9/10) = 4/9
#   cat: Ntp 1, Nsys 2, Nref 1 -> F 2/3;  dog: Ntp 1, Nsys 2, Nref 2 -> F 1/2;  speech: Ntp 0 -> F 0
#   bird: no reference events, F NaN (undefined recall), left out of the macro average
#   macro: (2/3 + 1/2 + 0) / 3 = 7/18
#   error rate: (S 0 + D 2 + I 3) / Nref 4 = 5/4
REFERENCE = {"a": [(1.0, 3.0, "dog"), (4.0, 6.0, "cat"), (7.0, 8.0, "dog"), (8.5, 9.5, "speech")], "b": [], "c": []}
ESTIMATED = {"a": [(1.1, 3.1, "dog"), (4.15, 5.75, "cat"), (7.5, 8.0, "dog"), (8.5, 9.8, "speech")],
             "b": [(2.0, 3.0, "cat")]}


def sed_eval_directly(reference, estimated, classes):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        import dcase_util
        import sed_eval

    def container(clip, events):
        return dcase_util.containers.MetaDataContainer(
            [{"filename": clip, "event_label": lab, "onset": on, "offset": off} for on, off, lab in events])

    ev = sed_eval.sound_event.EventBasedMetrics(event_label_list=classes, t_collar=0.200, percentage_of_length=0.2,
                                                empty_system_output_handling="zero_score")
    seg = sed_eval.sound_event.SegmentBasedMetrics(event_label_list=classes, time_resolution=1.0)
    for clip in sorted(reference):
        ref, est = container(clip, reference[clip]), container(clip, estimated.get(clip, []))
        ev.evaluate(reference_event_list=ref, estimated_event_list=est)
        seg.evaluate(reference_event_list=ref, estimated_event_list=est)
    return ev.results(), seg.results()


def test_event_metrics_match_sed_eval_and_the_hand_count():
    scores, per_class = sed.event_metrics(REFERENCE, ESTIMATED, CLASSES)
    assert scores["f1_event_micro"] == pytest.approx(4 / 9)
    assert scores["f1_event_macro"] == pytest.approx(7 / 18)
    assert scores["error_rate_event"] == pytest.approx(5 / 4)
    assert list(per_class["f1_event"][:3]) == pytest.approx([2 / 3, 1 / 2, 0])
    assert np.isnan(per_class["f1_event"][3]) and list(per_class["n_ref_events"]) == [1, 2, 1, 0]

    ev, seg = sed_eval_directly(REFERENCE, ESTIMATED, CLASSES)
    assert scores["f1_event_micro"] == ev["overall"]["f_measure"]["f_measure"]
    assert scores["f1_event_macro"] == ev["class_wise_average"]["f_measure"]["f_measure"]
    assert scores["error_rate_event"] == ev["overall"]["error_rate"]["error_rate"]
    assert scores["f1_segment_micro"] == seg["overall"]["f_measure"]["f_measure"]
    assert scores["f1_segment_macro"] == seg["class_wise_average"]["f_measure"]["f_measure"]
    assert scores["error_rate_segment"] == seg["overall"]["error_rate"]["error_rate"]
    assert list(per_class["f1_segment"][:3]) == [seg["class_wise"][c]["f_measure"]["f_measure"] for c in CLASSES[:3]]


def test_a_false_alarm_in_a_clip_without_reference_events_counts():
    without_b = {k: v for k, v in ESTIMATED.items() if k != "b"}
    with_alarm, _ = sed.event_metrics(REFERENCE, ESTIMATED, CLASSES)
    clean, _ = sed.event_metrics(REFERENCE, without_b, CLASSES)
    assert clean["f1_event_micro"] == pytest.approx(1 / 2) and with_alarm["f1_event_micro"] < clean["f1_event_micro"]


def test_perfect_and_empty_estimates():
    perfect, _ = sed.event_metrics(REFERENCE, REFERENCE, CLASSES)
    assert all(perfect[k] == 1.0 for k in perfect if k.startswith("f1_"))
    assert perfect["error_rate_event"] == 0.0 and perfect["error_rate_segment"] == 0.0
    empty, per_class = sed.event_metrics(REFERENCE, {}, CLASSES)  # zero, not NaN
    assert all(empty[k] == 0.0 for k in empty if k.startswith("f1_"))
    assert empty["error_rate_event"] == 1.0 and list(per_class["f1_event"][:3]) == [0.0, 0.0, 0.0]


def test_clip_names_must_pair_and_labels_must_be_known():
    with pytest.raises(ValueError, match="no reference"):
        sed.event_metrics(REFERENCE, {"z": [(0.0, 1.0, "cat")]}, CLASSES)
    with pytest.raises(ValueError, match="'owl'"):
        sed.event_metrics(REFERENCE, {"a": [(0.0, 1.0, "owl")]}, CLASSES)


def test_no_reference_events_at_all_gives_nan_not_a_huge_error_rate():
    scores, _ = sed.event_metrics({"x": []}, {"x": [(1.0, 2.0, "cat")]}, CLASSES)
    assert np.isnan(scores["error_rate_event"]) and np.isnan(scores["f1_event_macro"])


def test_frame_targets():
    y = sed.frame_targets([(0.25, 0.5, "dog"), (0.95, 2.0, "cat"), (0.1, 0.1, "speech")], CLASSES, 10, 0.1)
    assert y.dtype == np.float32 and y.shape == (10, 4)
    assert np.flatnonzero(y[:, 1]).tolist() == [2, 3, 4]  # 0.5 is the end of frame 4, frame 5 is not touched
    assert np.flatnonzero(y[:, 0]).tolist() == [9]  # clipped at the last frame
    assert not y[:, 2].any()  # zero length: no overlap
    with pytest.raises(ValueError, match="'owl'"):
        sed.frame_targets([(0.0, 1.0, "owl")], CLASSES, 10, 0.1)


def test_decode_inverts_frame_targets_to_one_frame():
    hop = 10 / 431  # the IJCNN 2019 frame
    events = [(0.37, 2.5, "dog"), (3.0, 3.3, "dog"), (1.234, 9.99, "speech"), (5.0, 5.6, "cat")]
    decoded = sed.decode(sed.frame_targets(events, CLASSES, 431, hop), 0.5, hop, CLASSES)
    assert sorted(e[2] for e in decoded) == sorted(e[2] for e in events)
    for (on, off, lab), (d_on, d_off, d_lab) in zip(sorted(events), sorted(decoded)):
        assert lab == d_lab and 0 <= on - d_on < hop and 0 <= d_off - off < hop
    # decoded events lie on frame edges: they survive another round exactly
    assert sed.decode(sed.frame_targets(decoded, CLASSES, 431, hop), 0.5, hop, CLASSES) == decoded


def test_decode_uses_each_class_threshold():
    classes = CLASSES[:3]
    p = np.array([[0.2, 0.6, 0.0], [0.3, 0.6, 0.0], [0.3, 0.2, 0.0], [0.1, 0.7, 0.0]])
    assert sed.decode(p, [0.3, 0.5, 0.5], 0.5, classes) == [
        (0.0, 1.0, "dog"), (0.5, 1.5, "cat"), (1.5, 2.0, "dog")]  # at or above counts: cat's 0.3 frames
    assert sed.decode(p, 0.65, 0.5, classes) == [(1.5, 2.0, "dog")]
    with pytest.raises(ValueError, match="classes"):
        sed.decode(p[:, :2], 0.5, 0.5, classes)


def test_psds_ranks_a_good_detector_above_a_poor_one():
    hop = 0.1
    classes = ["a", "b"]
    reference = {"c1": [(1.0, 2.0, "a"), (3.0, 4.5, "b")], "c2": [(0.5, 1.5, "b")], "c3": []}
    perfect = {c: sed.frame_targets(ev, classes, 60, hop) for c, ev in reference.items()}
    noisy = {c: 0.5 * f + 0.5 * np.random.default_rng(0).random(f.shape) for c, f in perfect.items()}
    wrong = {c: f[:, ::-1].copy() for c, f in perfect.items()}  # every event given to the other class
    good = sed.psds(perfect, reference, classes, hop)
    assert 0.9 < good <= 1.0
    assert sed.psds(wrong, reference, classes, hop) < 0.1 < sed.psds(noisy, reference, classes, hop) <= good
    # a class without reference events in these clips is left out (sed_scores_eval refuses it)
    three = {c: np.concatenate([f, np.zeros((len(f), 1))], axis=1) for c, f in perfect.items()}
    assert sed.psds(three, reference, classes + ["c"], hop) == pytest.approx(good)
    assert np.isnan(sed.psds({"c3": perfect["c3"]}, reference, classes, hop))
