"""The deployed path (agent/pipeline.py) on the real rotation classifier: one place, one meaning of each stage."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edgeprobe.agent.config import ModelConfig, TaskConfig
from edgeprobe.agent.pipeline import STABLE_BLOCK, STAGES, WarmUp, open_pipeline
from edgeprobe.harness.errors import ConfigError, ModelError
from tests.conftest import random_image


def test_timed_and_predict_run_the_same_path_and_time_every_stage(orientation_model: Path) -> None:
    pipeline = open_pipeline(ModelConfig(path=str(orientation_model)), TaskConfig(), warmup=WarmUp(2))
    assert pipeline.input_hw == (224, 224) and pipeline.adapter is not None
    image = random_image(np.random.default_rng(0), 120, 160)
    runs = [pipeline.timed(image) for _ in range(3)]
    assert [r.warmup for r in runs] == [True, True, False]
    assert pipeline.first_inference_ns is not None and pipeline.first_inference_ns > 0
    run = runs[-1]
    assert set(run.stages) == {"preprocess", "inference", "postprocess", "e2e"} <= set(STAGES)
    # e2e from preprocess spans the three stages (and nothing else of note)
    assert run.stages["e2e"] >= run.stages["preprocess"] + run.stages["inference"] + run.stages["postprocess"]
    assert pipeline.adapter.disagreement(run.prediction, pipeline.predict(image)) == 0.0
    np.testing.assert_allclose(np.asarray(run.outputs[0]), np.asarray(pipeline.outputs(image)[0]), rtol=1e-5)


def test_e2e_starts_when_the_frame_became_available_and_decode_is_its_own_stage(orientation_model: Path) -> None:
    pipeline = open_pipeline(ModelConfig(path=str(orientation_model)), TaskConfig())
    image = random_image(np.random.default_rng(1), 64, 64)
    queued_since = time.perf_counter_ns() - 50_000_000  # the frame waited 50 ms behind a busy model
    run = pipeline.timed(image, queued_since, decode_ns=1234)
    assert run.stages["e2e"] >= 50_000_000 and run.stages["decode"] == 1234
    assert "decode" not in pipeline.timed(image).stages


def test_a_second_session_predicts_the_same_and_latency_only_pipelines_skip_the_adapter(
        orientation_model: Path) -> None:
    pipeline = open_pipeline(ModelConfig(path=str(orientation_model)), TaskConfig())
    worker = pipeline.session(threads=1)
    assert worker.backend is not pipeline.backend and worker.model_cfg is not None
    assert worker.model_cfg.threads == 1
    image = random_image(np.random.default_rng(2), 90, 90)
    assert pipeline.adapter.disagreement(worker.predict(image), pipeline.predict(image)) == 0.0
    bare = open_pipeline(ModelConfig(path=str(orientation_model)), None)
    assert bare.adapter is None and "postprocess" not in bare.timed(image).stages


def test_a_task_that_does_not_fit_is_one_sentence_unless_it_is_optional(orientation_model: Path) -> None:
    model = ModelConfig(path=str(orientation_model))
    with pytest.raises(ConfigError, match=r"task\.iou does not apply") as err:
        open_pipeline(model, TaskConfig(kind="classification", iou=0.5))
    assert "\n" not in str(err.value)
    with pytest.raises(ModelError, match=r"layouts that fit: classification"):
        open_pipeline(model, TaskConfig(kind="segmentation"))
    assert open_pipeline(model, TaskConfig(kind="segmentation"), optional_task=True).adapter is None


@settings(max_examples=60, deadline=None)
@given(runs=st.integers(0, 50), times=st.lists(st.integers(1, 10**9), min_size=0, max_size=200))
def test_a_fixed_warm_up_flags_exactly_its_first_runs(runs: int, times: list[int]) -> None:
    warm = WarmUp(runs)
    flags = [warm.add(t) for t in times]
    assert flags == [i < runs for i in range(len(times))]
    assert warm.count == min(runs, len(times)) and warm.done == (len(times) >= runs)


def test_warm_up_until_stable_stops_when_two_blocks_agree_and_is_capped() -> None:
    settle = WarmUp(5, until_stable=True, max_runs=1000)
    slow_then_steady = [10_000_000] * 15 + [1_000_000] * 100
    n = sum(settle.add(t) for t in slow_then_steady)
    assert settle.stable and n % STABLE_BLOCK == 0 and 2 * STABLE_BLOCK <= n <= 15 + 3 * STABLE_BLOCK
    noisy = WarmUp(0, until_stable=True, max_runs=40)
    drifting = [int(1_000_000 * 1.1**i) for i in range(100)]  # a clock still ramping: blocks never agree
    assert sum(noisy.add(t) for t in drifting) == 40
    assert not noisy.stable and noisy.done
