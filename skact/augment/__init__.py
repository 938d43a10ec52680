"""Batched, on-device, seeded augmentations: table rows and images."""

from .image import Compose, ImageAugment, ViewParams
from .tabular import TabularAugment

__all__ = ["Compose", "ImageAugment", "TabularAugment", "ViewParams"]
