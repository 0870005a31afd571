"""GGUF models as fit sees them: an ``Inventory`` (every tensor's name, type, shape, bytes,
layer and role, plus metadata and hyperparameters), read from the header only.

In: a local ``.gguf`` (any part of a split set), ``hf://owner/repo/file.gguf[@rev]`` (range
reads through huggingface_hub), or a catalogue name (``data/models/``). Out: ``Inventory``
(``sources.load_inventory``). Also here: a Hub repository's GGUF files grouped into quants
(flat, per-quant folders, ``UD-``, split sets) and its README text (``repo``); synthetic
GGUF files from a ``Blueprint`` (for tests that launch the real llama-server), llama.cpp's
quant-type choice per tensor (``quant_mix``) and the catalogue's writer and sources.
Hostile headers raise ``GGUFError``/``BadInput``, and so does a model llama.cpp's loader
would refuse (``loadable``: tensors and shapes against the architecture, hyperparameters in
range), before anything is built from it.
"""
