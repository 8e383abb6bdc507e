"""Long-tail data sets by name; importing this package registers them all."""
from . import cifar, demo, split_files, synthetic, user_data  # noqa: F401  (registration)
from .base import DataError, LongTailData
from .groups import ClassGroups
from .checks import check_images
from .registry import DATASETS, build_dataset, dataset_config, register_dataset

__all__ = ["ClassGroups", "DataError", "LongTailData", "DATASETS", "build_dataset", "check_images", "dataset_config",
           "register_dataset"]
