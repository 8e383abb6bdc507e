import numpy as np
import pytest
from PIL import Image

from bench.data.base import DataError
from bench.data.split_files import parse_split_file
from bench.perf.loader import (STAGES, LoaderConfig, against_training, format_loader, main, measure_loader,
                               stage_costs, worker_counts, write_jpeg_folder)


def test_synthetic_folder_is_inaturalist_size_jpegs_listed_in_a_split_file(tmp_path):
    split = write_jpeg_folder(tmp_path, 3)
    paths, labels, _ = parse_split_file(split)
    assert paths[0].startswith("train_val2018/") and list(labels) == [0, 1, 2]
    with Image.open(tmp_path / paths[1]) as image:
        assert image.format == "JPEG" and image.size == (800, 600)
        pixels = np.asarray(image)
    assert pixels.std() > 20  # content to decode, not a flat colour


def test_worker_counts_go_from_in_process_to_the_limit():
    assert worker_counts(0) == [0]
    assert worker_counts(2) == [0, 1, 2]
    assert worker_counts(12) == [0, 1, 2, 4, 8, 12]


def test_real_split_is_measured_and_workers_needed_follow_the_training_speed(tmp_path):
    split = write_jpeg_folder(tmp_path, 6)
    config = LoaderConfig(batch_size=2, split=split, max_workers=1, stage_repeats=0)
    report = against_training(measure_loader(config, 32, False), {"slow": 1e-3, "fast": 1e9})
    assert report["images"] == 6 and set(report["img_s_by_workers"]) == {0, 1}
    assert all(rate > 0 for rate in report["img_s_by_workers"].values())
    assert report["workers_needed"] == {"slow": 0, "fast": None}
    printed = format_loader(report)
    assert "slow trains at 0 img/s: 0 workers keep up" in printed and "fast" in printed and "keeps up (best" in printed


def test_missing_image_names_the_split_file_and_line(tmp_path):
    split = write_jpeg_folder(tmp_path, 4)
    (tmp_path / parse_split_file(split)[0][2]).unlink()
    with pytest.raises(DataError, match=r"iNaturalist18_train.txt, line 3"):
        measure_loader(LoaderConfig(batch_size=2, split=split, max_workers=0, stage_repeats=0), 32, False)


def test_stage_costs_compare_the_float_and_uint8_pipelines_stage_by_stage(tmp_path):
    split = write_jpeg_folder(tmp_path, 6)
    paths, labels, lines = parse_split_file(split)
    from bench.data.base import FileImages

    stages = stage_costs(FileImages(tmp_path, paths, labels, split, lines), 32, 2, repeats=1)
    ms = stages["stages_ms"]
    assert set(ms) == {"float", "uint8", "device"} and all(list(ms[p]) == list(STAGES) for p in ms)
    assert ms["float"]["decode"] == ms["uint8"]["decode"] > 0  # the same decode and crop serve both
    assert ms["float"]["crop_resize"] == ms["uint8"]["crop_resize"] > 0
    assert ms["uint8"]["normalise"] == 0.0 < ms["float"]["normalise"]  # uint8: normalised on the device
    bytes_ = stages["bytes_per_crop"]
    assert (bytes_["float"], bytes_["uint8"]) == (4 * 3 * 32 * 32, 3 * 32 * 32) and bytes_["device"] > 0
    # resize on the device: the workers' crop is the box's pixels alone; the device side is timed on its own
    assert ms["device"]["decode"] == ms["float"]["decode"] and ms["device"]["to_tensor"] == 0.0
    assert stages["device_resize_ms"] > 0 and stages["device_speedup_per_core"] == (
        stages["img_s_per_core"]["device"] / stages["img_s_per_core"]["float"])
    assert all(stages[k][p] > 0 for k in ("img_s_per_core", "img_s_one_worker") for p in ms)
    assert stages["speedup_per_core"] == stages["img_s_per_core"]["uint8"] / stages["img_s_per_core"]["float"]
    printed = format_loader({"source": "six", "crop": 32, "img_s_by_workers": {0: 1.0}, "stages": stages})
    assert "crop_resize" in printed and "img/s, in-process (1 core)" in printed and "bytes per crop" in printed
    assert "decode+crop (resize on device)" in printed


def test_the_loader_command_prints_the_stage_table(tmp_path, capsys):
    split = write_jpeg_folder(tmp_path, 4)
    assert main(["--split", str(split), "--size", "32", "--batch-size", "2", "--workers", "0", "--repeats", "1"]) == 0
    out = capsys.readouterr().out
    assert "loader, " in out and "float (today)" in out and "ipc" in out
