"""The "auto" bias decision is made on the unbiased random stratum, ties keep plain training."""

from __future__ import annotations

from taxrisk.training.config import load_config
from taxrisk.training.pipeline import _choose_bias


def _v(all_capture: float, random_capture: float) -> dict[str, float]:
    return {"all_yield_capture": all_capture, "random_yield_capture": random_capture}


def test_ipw_winning_only_on_the_biased_sample_is_not_kept() -> None:
    cfg = load_config()
    per = {"none": _v(0.895, 0.941), "ipw": _v(0.903, 0.941)}
    assert _choose_bias(per, cfg) == "none"


def test_ipw_kept_on_a_clear_random_stratum_gain() -> None:
    cfg = load_config()
    assert _choose_bias({"none": _v(0.9, 0.80), "ipw": _v(0.8, 0.85)}, cfg) == "ipw"
    assert _choose_bias({"none": _v(0.9, 0.80), "ipw": _v(0.8, 0.81)}, cfg) == "none"


def test_no_random_stratum_keeps_plain_training() -> None:
    cfg = load_config()
    nan = float("nan")
    assert _choose_bias({"none": _v(0.8, nan), "ipw": _v(0.9, nan)}, cfg) == "none"
    assert _choose_bias({"none": _v(0.8, 0.5)}, cfg) == "none"
