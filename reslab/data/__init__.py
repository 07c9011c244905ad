"""Data sets and tensor transforms (no torchvision: Pillow decodes, torch augments).

Bottom to top: types (splits, image references) · decode, preprocessing (InputConfig and the
evaluation transform), folder/layouts/cifar/digits/archives/shards (readers) · cache, crops, whole,
streaming, loader · catalog (what a --data value holds) · sources (what a run or an evaluation reads)
· pipeline (the functions the training engine calls)."""
from .decode import decode_image, decode_images
from .folder import IMAGE_EXTENSIONS, ImageFolderIndex, scan_image_folder
from .preprocessing import ImageTransform, InputConfig, eval_image, normalize
from .types import IMAGENET_MEAN, IMAGENET_STD, DataBundle, FileSplit, Split

__all__ = ["IMAGE_EXTENSIONS", "ImageFolderIndex", "scan_image_folder", "decode_image", "decode_images", "eval_image",
           "normalize", "InputConfig", "ImageTransform", "IMAGENET_MEAN", "IMAGENET_STD", "DataBundle", "FileSplit",
           "Split"]
