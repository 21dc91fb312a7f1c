"""Reduced precision (INT8, BF16) and the evidence that it still answers as FP32 does.

guard.py         the precisions, which this CPU can run, and the verdict a reduced one must pass
quantize.py      INT8 post-training quantization with NNCF: the recipe, and why
views.py         more calibration samples from the same photos: seeded crops, mirrors, brightness
calibration.py   the photos to calibrate on and to judge on, one folder split in two shares
photos/          the default calibration folder: the 85 course photos, cat/ dog/ other/
"""
