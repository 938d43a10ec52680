"""Batched, on-device, seeded augmentations: table rows and images."""

from .image import ImageAugment
from .tabular import TabularAugment

__all__ = ["ImageAugment", "TabularAugment"]
