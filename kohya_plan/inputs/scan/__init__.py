"""Image folders, images and captions as sd-scripts will read them (header-only, fast)."""

from kohya_plan.inputs.scan.captions import CaptionState
from kohya_plan.inputs.scan.folders import (
    FolderScan,
    ImageEntry,
    RepeatFolder,
    count_images,
    list_repeat_folders,
    parse_repeat_folder_name,
    scan_folder,
)
from kohya_plan.inputs.scan.images import (
    IMAGE_EXTENSIONS,
    OTHER_IMAGE_EXTENSIONS,
    PIL_MAX_IMAGE_PIXELS,
    read_image_size,
)

__all__ = [
    "IMAGE_EXTENSIONS",
    "OTHER_IMAGE_EXTENSIONS",
    "PIL_MAX_IMAGE_PIXELS",
    "CaptionState",
    "FolderScan",
    "ImageEntry",
    "RepeatFolder",
    "count_images",
    "list_repeat_folders",
    "parse_repeat_folder_name",
    "read_image_size",
    "scan_folder",
]
