"""Data: loaders for the shipped real data, standard layouts, splits, TFDS builders.

The TFDS builders live in :mod:`hashjax.data.tfds_builders`; import that module
explicitly (it imports ``tensorflow_datasets`` and registers the builders).
"""

from hashjax.data.core import MultiModalData, RetrievalSplit, to_multihot
from hashjax.data.image_text import (
    STANDARD_LAYOUT_DATASETS,
    ImageTextData,
    coco_mini_root,
    load_coco,
    load_standard_layout,
)
from hashjax.data.loaders import (
    UCI_MFEAT_VIEWS,
    load_feature_file,
    load_mirflickr_tags,
    load_uci_mfeat,
    load_wikipedia,
)
from hashjax.data.registry import (
    IMAGE_TEXT_DATASETS,
    dataset_names,
    get_image_text_data,
    get_retrieval_split,
)
from hashjax.data.splits import (
    SEMI_PAIRED_MODES,
    VALIDATION_SOURCES,
    HeldOutSplit,
    SemiPairedSplit,
    apply_semi_paired,
    deal_image_text,
    deal_validation,
    labelled_positions,
    query_database_split,
    semi_paired_split,
    train_validation_split,
    validation_positions,
)

__all__ = [
    "IMAGE_TEXT_DATASETS",
    "VALIDATION_SOURCES",
    "HeldOutSplit",
    "ImageTextData",
    "MultiModalData",
    "RetrievalSplit",
    "SEMI_PAIRED_MODES",
    "STANDARD_LAYOUT_DATASETS",
    "SemiPairedSplit",
    "UCI_MFEAT_VIEWS",
    "apply_semi_paired",
    "coco_mini_root",
    "dataset_names",
    "deal_image_text",
    "deal_validation",
    "get_image_text_data",
    "get_retrieval_split",
    "labelled_positions",
    "load_coco",
    "load_feature_file",
    "load_mirflickr_tags",
    "load_standard_layout",
    "load_uci_mfeat",
    "load_wikipedia",
    "query_database_split",
    "semi_paired_split",
    "to_multihot",
    "train_validation_split",
    "validation_positions",
]
