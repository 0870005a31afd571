"""Units of measure and device names: the one home of these facts for all of fit.

Bytes are counted in binary units where llama.cpp prints them (``MiB``), decimal ``GB`` where
spec sheets and Hugging Face listings use them. ``CPU`` is the host device as llama.cpp names
it in buffer types and as fit names it in plans.
"""

KIB = 1024
MIB = 1024**2
GIB = 1024**3
GB = 1000**3

CPU = "CPU"
