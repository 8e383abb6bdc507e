"""PPT (V-PETL Bench's performance-parameter trade-off) against values worked out by hand from its formula, its
published tables, and the results.csv column."""
import math

import pytest

from bench.job_result import ROW_COLUMNS, JobResult, JobRow
from bench.ppt import PPT_NORMALISER, ppt


def test_ppt_by_hand():
    assert PPT_NORMALISER == 1e7
    assert ppt(52.94, 0) == pytest.approx(0.5294)  # nothing tuned: the accuracy as a fraction
    assert ppt(100.0, 9e7) == pytest.approx(math.exp(-1))  # P / C + 1 = 10: one factor of e
    assert ppt(80.0, 9.9e8) == pytest.approx(0.8 * math.exp(-2))  # P / C + 1 = 100
    # log10(1.016) = 0.0068937, exp(-0.0068937) = 0.993130: V-PETL Bench's VTAB Adapter row (71.44 %, 0.16 M, 0.71)
    assert ppt(71.44, 160_000) == pytest.approx(0.709492, abs=1e-6) and round(ppt(71.44, 160_000), 2) == 0.71
    assert round(ppt(71.70, 2_380_000), 2) == 0.65  # its LST row: 2.38 M
    assert round(ppt(49.2, 12_600_000), 2) == 0.35  # its COCO Partial-1 row: 12.60 M


def test_ppt_without_a_number_is_none_not_made_up():
    assert ppt(None, 1000) is None and ppt(50.0, None) is None and ppt(float("nan"), 0) is None
    with pytest.raises(ValueError, match="cannot be negative"):
        ppt(50.0, -1)


def test_results_rows_carry_ppt_from_the_backbone_parameters():
    assert ROW_COLUMNS.index("ppt") > ROW_COLUMNS.index("classifier_params")  # added at the end
    result = JobResult("j", "synthetic_lt/lora/seed0", {"dataset": "synthetic_lt"},
                       metrics={"test": {"top1": 71.44}},
                       params={"trainable": 160_000 + 7_680, "backbone_trainable": 160_000, "classifier": 7_680})
    row = result.to_row()
    assert row["ppt"] == pytest.approx(ppt(71.44, 160_000))  # the classifier is not counted
    older = {k: v for k, v in row.items() if k != "ppt"}  # a row file written before the column existed
    assert JobRow("j", "label", "ok", older).to_row()["ppt"] == row["ppt"]
    assert JobResult("k", "l", {}, metrics={"test": {"top1": 50.0}}, params={"trainable": 10}).to_row()["ppt"] is None
