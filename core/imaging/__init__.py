"""Imaging helpers shared by every operator (one module a job): file I/O with bit depths (io), sRGB curves (color),
colorimetry on colour-science (colorimetry), tiling, edge-aware resampling (resample), depth maps (depthmap), normal
maps (normalmap), pyramids and band splits (bands), pull-push hole filling (fill), noise measurement (noise) and
dense warps (warp)."""
