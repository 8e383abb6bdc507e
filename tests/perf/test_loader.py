import numpy as np
import pytest
from PIL import Image

from bench.data.base import DataError
from bench.data.split_files import parse_split_file
from bench.perf.loader import (LoaderConfig, against_training, format_loader, measure_loader, worker_counts,
                               write_jpeg_folder)


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
    config = LoaderConfig(batch_size=2, split=split, max_workers=1)
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
        measure_loader(LoaderConfig(batch_size=2, split=split, max_workers=0), 32, False)
