import numpy as np
import pytest

from bench.data import DataError, build_dataset, dataset_config
from bench.data.synthetic import SyntheticLT


def test_seeded_and_deterministic(tmp_path):
    first = SyntheticLT().build(tmp_path, False)
    second = SyntheticLT().build(tmp_path, False)
    other = SyntheticLT(seed=1).build(tmp_path, False)
    assert np.array_equal(first.train.images, second.train.images)
    assert first.fingerprint == second.fingerprint != other.fingerprint
    assert not np.array_equal(first.train.images, other.train.images)


def test_long_tail_profile_with_all_groups():
    data = build_dataset(dataset_config("synthetic_lt"), "unused")
    counts = data.train_class_counts
    assert counts[0] == 200 and counts[-1] == 2 and np.all(np.diff(counts) <= 0)
    assert all(len(ids) for ids in data.groups.as_dict().values())
    assert np.all(np.bincount(data.test.labels) == 20)
    assert data.classnames[0] == "red stripes" and len(set(data.classnames)) == 20
    image = data.train.load(0)
    assert image.size == (32, 32) and image.mode == "RGB"


def test_options_that_leave_a_class_without_training_images_are_refused():
    with pytest.raises(DataError, match=r"synthetic_lt: 3 of 20 classes have no image in the synthetic_lt train "
                                        r"split: 17 'pink checks', 18 'brown checks', 19 'gray checks'; "
                                        r"change the data set's options"):
        SyntheticLT(max_per_class=50).build(None, False)
