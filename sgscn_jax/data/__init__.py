"""Reading and writing images, masks and volumes (with geometry), working size and
buckets, synthetic data, and the data-set layouts (`datasets`).

The public names below are re-exported from the modules that define them:

    from sgscn_jax.data import list_dataset, read_image, lesion_image
    cases, load = list_dataset("demo", demo_n=2, demo_size=32)
    record = load(cases[0])          # Record: case_id, image [H, W, C] in [0, 1], mask, extra
"""

from sgscn_jax.data.datasets import (DATASETS, Case, Record, despeckle_prior, get_dataset,
                                     list_dataset, load_record, object_prior, sgscn_prior,
                                     standardise_prior)
from sgscn_jax.data.decode import ImageReadError, normalise_intensities, standardise
from sgscn_jax.data.files import (atomic_write_bytes, json_text, write_json, write_label_map,
                                  write_png)
from sgscn_jax.data.hair import HairConfig, hair_mask, remove_hair
from sgscn_jax.data.image_io import ImageRecord, read_image, read_mask
from sgscn_jax.data.resize import (bucket_shape, labels_to_shape, labels_to_volume_shape,
                                   resize_image, resize_volume, working_shape)
from sgscn_jax.data.scan_region import ScanRegion, find_scan_region
from sgscn_jax.data.speckle import despeckle
from sgscn_jax.data.synthetic import lesion_image, two_region_image
from sgscn_jax.data.volume_io import (VOLUME_SUFFIXES, Geometry, VolumeRecord, read_volume,
                                      read_volume_file, read_volume_mask, write_label_volume)

__all__ = [
    "Case", "DATASETS", "Geometry", "HairConfig", "ImageReadError", "ImageRecord", "Record",
    "ScanRegion", "VOLUME_SUFFIXES", "VolumeRecord", "atomic_write_bytes", "bucket_shape",
    "despeckle", "despeckle_prior", "find_scan_region", "get_dataset", "hair_mask", "json_text",
    "labels_to_shape", "labels_to_volume_shape", "lesion_image", "list_dataset", "load_record",
    "normalise_intensities", "object_prior", "read_image", "read_mask", "read_volume",
    "read_volume_file", "read_volume_mask", "remove_hair", "resize_image", "resize_volume",
    "sgscn_prior", "standardise", "standardise_prior", "two_region_image", "working_shape",
    "write_json", "write_label_map", "write_label_volume", "write_png",
]
