import json

import torch

from bench.perf import COLUMNS, main


def test_benchmark_runs_on_the_tiny_model_and_prints_every_column(tmp_path, capsys):
    out = tmp_path / "perf.json"
    assert main(["--model", "ltbench-tiny", "--regimes", "zero_shot", "linear_probe", "full", "lift_plus", "--probe-images", "300", "--num-classes", "10",
                 "--batch-size", "4", "--eval-batch-size", "4", "--steps", "2", "--warmup", "1", "--device", "cpu",
                 "--loader-images", "12", "--loader-workers", "1", "--json", str(out)]) == 0
    printed = capsys.readouterr().out
    header = printed.splitlines()[1]
    assert all(title in header for _, title, _ in COLUMNS)
    report = json.loads(out.read_text())
    rows = {(r["regime"], r["setting"]): r for r in report["rows"]}
    assert set(rows) == {(r, s) for r in ("zero_shot", "linear_probe", "full", "lift_plus") for s in ("baseline", "ltbench")}
    assert rows[("full", "baseline")]["train_speedup"] == 1.0 and rows[("full", "baseline")]["kernel"] == "loop"
    assert "train_img_s" not in rows[("zero_shot", "ltbench")]  # nothing trains
    full, lift = rows[("full", "ltbench")], rows[("lift_plus", "ltbench")]
    for row in (full, lift):
        # figures, not their order: at 4 images a step, one CPU timing beside another test can put TTE's 5 crops
        # ahead of 1 (speed targets live in the benchmark's output, not in tests)
        assert row["train_img_s"] > 0 and row["eval_img_s"] > 0 and row["eval_tte_img_s"] > 0 and \
            0 < row["mfu_pct"] < 100
    # LIFT+ computes no weight gradients for the frozen blocks: fewer FLOPs per image than full fine-tuning
    assert lift["train_gflop_per_img"] < full["train_gflop_per_img"]
    assert report["peak_matmul_tflops"]["fp32"] > 0 and report["versions"]["torch"] == torch.__version__
    cached = report["linear_probe_cached_epoch"]
    assert cached["images"] == 300 and cached["speedup"] > 1 and "cached features" in printed
    loader = report["loader"]
    assert set(loader["img_s_by_workers"]) == {"0", "1"} and loader["images"] == 12 and loader["crop"] == 32
    assert set(loader["workers_needed"]) == {"linear_probe", "full", "lift_plus"} and "loader, 12 synthetic" in printed


def test_each_regime_is_measured_on_its_own_copy_of_the_tower():
    from bench.perf.regimes import PerfConfig, _build, _synthetic_data
    from bench.models import create_clip

    clip = create_clip("ltbench-tiny", "none")
    data = _synthetic_data(10)
    before = sum(1 for _ in clip.visual.modules())
    _, _, vpt = _build(PerfConfig("ltbench-tiny"), "vpt", data, clip, torch.device("cpu"))
    assert sum(1 for _ in clip.visual.modules()) == before and vpt.visual is not clip.visual


def test_bad_names_and_a_missing_loader_split_stop_with_a_clear_error_before_measuring(tmp_path, capsys):
    assert main(["--model", "ltbench-tiny", "--regimes", "nope", "--device", "cpu"]) == 2
    assert "unknown regime 'nope'" in capsys.readouterr().err
    missing = tmp_path / "iNaturalist18_train.txt"
    out = tmp_path / "perf.json"
    assert main(["--model", "ltbench-tiny", "--regimes", "full", "--device", "cpu", "--loader-split", str(missing),
                 "--json", str(out)]) == 2
    printed = capsys.readouterr()
    assert f"split file not found: {missing}" in printed.err and "regime" not in printed.out and not out.exists()


def test_a_backbone_measures_what_runs_on_it_and_names_what_does_not(tmp_path, capsys):
    """On a ResNet without text tower: the probe is measured (random head init, no text embeddings), the text
    side and ViT-only regimes are rows that say why they were not."""
    out = tmp_path / "perf.json"
    assert main(["--model", "in1k_rn50", "--regimes", "linear_probe", "lora", "coop", "--num-classes", "4",
                 "--batch-size", "2", "--eval-batch-size", "2", "--steps", "1", "--warmup", "0", "--device", "cpu",
                 "--probe-images", "8", "--loader-images", "4", "--loader-workers", "0", "--json", str(out)]) == 0
    printed = capsys.readouterr().out
    rows = {(r["regime"], r["setting"]): r for r in json.loads(out.read_text())["rows"]}
    assert rows[("linear_probe", "ltbench")]["train_img_s"] > 0
    assert "lora needs a ViT tower: in1k_rn50 is a ResNet" in rows[("lora", "ltbench")]["skipped"]
    assert "coop: not measured, the text-encoder classifier needs a CLIP text tower" in printed
