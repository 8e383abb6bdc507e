import numpy as np
import pandas as pd

from reports.statistics_figures import correlations, few_shot_target
from reports.verdict import statistic_findings


def _jobs(few, **statistics) -> pd.DataFrame:
    names = [f"r{i}" for i in range(len(few))]
    return pd.DataFrame({"regime": names, "row": names, "few": few, **statistics})


def test_the_target_is_the_change_from_the_zero_shot_row_when_one_ran():
    rows = pd.DataFrame({"regime": ["zero_shot", "zero_shot", "full", "lora"],
                         "row": ["zero_shot", "zero_shot", "full", "lora"], "few": [10.0, 12.0, 5.0, 20.0]})
    target, base = few_shot_target(rows)
    assert base == 11.0 and target.tolist() == [-1.0, 1.0, -6.0, 9.0]  # the zero-shot row's mean over seeds
    target, base = few_shot_target(rows[rows.regime != "zero_shot"])
    assert base is None and target.tolist() == [5.0, 20.0]


def test_a_finding_needs_five_jobs_and_p_below_five_percent():
    rows = _jobs([1.0, 2.0, 3.0, 4.0, 5.0, 6.0], frechet=[6.0, 5.0, 4.0, 3.0, 2.0, 1.0],
                 nc1_train=[1.0, 3.0, 2.0, 6.0, 4.0, 5.0], cka_test=[None] * 6)
    table = correlations(rows)
    assert table.loc["frechet"].rho == -1.0 and table.loc["frechet"].n == 6 and table.loc["frechet"].p < 0.05
    assert 0.05 < table.loc["nc1_train"].p < 0.1  # ρ = 0.77: not carried
    assert table.loc["cka_test"].n == 0 and np.isnan(table.loc["cka_test"].rho)
    [line] = statistic_findings(rows)
    assert line.startswith("Across 6 jobs, Fréchet train/test (class mean) falls as the few-shot accuracy rises")
    assert "not corrected for the 7 statistics tested" in line
    assert statistic_findings(rows.iloc[:4]) == []  # ρ = −1 over 4 jobs: too few to say anything
