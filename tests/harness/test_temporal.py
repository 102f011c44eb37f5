"""Temporal flip rate with a frame-difference gate, against a brute-force count and on a real model."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from edgeprobe.agent.backends import load_backend
from edgeprobe.agent.config import ModelConfig, PreprocessConfig
from edgeprobe.harness.health import HealthWindow
from edgeprobe.harness.tasks import make_adapter
from edgeprobe.harness.temporal import FlipCounter


def _top1_disagreement(a: int, b: int) -> float:
    return float(a != b)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 3), st.sampled_from([0.0, 0.5, 2.0, 3.0, 3.01, 40.0])), min_size=1,
                max_size=80), st.integers(1, 40))
def test_flip_count_matches_brute_force(frames: list[tuple[int, float]], split: int) -> None:
    counter = FlipCounter(_top1_disagreement, 0.5, max_frame_diff=3.0)
    for i, (label, motion) in enumerate(frames):
        counter.add(label, None if i == 0 else motion)
        if i == split:
            counter.clear()  # a window boundary keeps the previous prediction
    start = split + 1 if split < len(frames) else 1  # pairs after the last clear()
    pairs = [(frames[i - 1][0], frames[i][0], frames[i][1]) for i in range(start, len(frames))]
    counted = [(a, b) for a, b, m in pairs if 0.0 < m <= 3.0]
    flips = sum(a != b for a, b in counted)
    s = counter.summary()
    assert (s["pairs"], s["counted"], s["flips"]) == (len(pairs), len(counted), flips)
    assert s["identical"] == sum(m == 0.0 for _, _, m in pairs)
    assert s["gated_out"] == sum(m > 3.0 for _, _, m in pairs)
    assert 0.0 <= s["ci_low"] <= s["flip_rate"] <= s["ci_high"] <= 1.0


def test_scene_cuts_are_not_blamed_on_the_model() -> None:
    counter = FlipCounter(_top1_disagreement, 0.5, max_frame_diff=3.0)
    for label, motion in [(0, None), (1, 30.0), (0, 30.0), (0, 1.0), (1, 1.0)]:
        counter.add(label, motion)
    s = counter.summary()
    assert s["gated_out"] == 2 and s["counted"] == 2 and s["flips"] == 1 and s["flip_rate"] == 0.5


def test_flip_rate_of_the_rotation_classifier_on_real_video(orientation_model: Path, vtest_video: Path) -> None:
    backend = load_backend(ModelConfig(path=str(orientation_model), threads=1, preprocess=PreprocessConfig(
        resize="center_crop", color="bgr", mean=[0.485, 0.456, 0.406], std=[0.229, 0.224, 0.225])))
    adapter = make_adapter("classification", backend.output_specs, labels=backend.labels_from_metadata())
    cap = cv2.VideoCapture(str(vtest_video))
    health, counter = HealthWindow(), FlipCounter(adapter.disagreement, adapter.threshold, max_frame_diff=3.0)
    labels, motions = [], []
    for i in range(120):
        ok, frame = cap.read()
        assert ok
        if 60 <= i < 64:
            frame = np.full_like(frame, 255) if i % 2 else frame  # a flash: huge frame differences
        pred = adapter.decode(backend.infer(backend.preprocess(frame)))
        stats = health.add(frame, i)
        counter.add(pred, stats.motion)
        labels.append(pred.top1)
        motions.append(stats.motion)
    cap.release()
    expected = sum(labels[i] != labels[i - 1] for i in range(1, 120) if 0 < (motions[i] or 0) <= 3.0)
    s = counter.summary()
    assert s["flips"] == expected and s["gated_out"] >= 4
    assert s["counted"] == sum(1 for m in motions[1:] if m is not None and 0 < m <= 3.0)
    assert 0 < s["flip_rate"] < 0.5  # this text classifier flickers on pedestrians, but not at random
