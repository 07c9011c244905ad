"""Data sets and tensor transforms (no torchvision: Pillow decodes, torch augments)."""
from .folder import IMAGE_EXTENSIONS, ImageFolderIndex, decode_image, decode_images, scan_image_folder

__all__ = ["IMAGE_EXTENSIONS", "ImageFolderIndex", "scan_image_folder", "decode_image", "decode_images"]
