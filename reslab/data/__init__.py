"""Data sets and tensor transforms (no torchvision: Pillow decodes, torch augments)."""
from .decode import decode_image, decode_images, load_square
from .folder import IMAGE_EXTENSIONS, ImageFolderIndex, scan_image_folder
from .transforms import IMAGENET_MEAN, IMAGENET_STD, normalize

__all__ = ["IMAGE_EXTENSIONS", "ImageFolderIndex", "scan_image_folder", "decode_image", "decode_images", "load_square",
           "normalize", "IMAGENET_MEAN", "IMAGENET_STD"]
