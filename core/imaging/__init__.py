"""Imaging helpers shared by every operator: file I/O, colour, tiling, resampling."""
