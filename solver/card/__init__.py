"""Model cards (a Hugging Face repository's README.md) read as data.

In: the card's text. Out: ``CardDocument`` (YAML front matter, body, its tables and
sentences; ``document``), ``CardFacts`` (base model, license, parameters, dense or MoE,
layers, experts, context length, specialties; ``facts``), the quality rows a quantizer
publishes (KLD, perplexity per quant; ``quality``) and the sampler advice (temperature, top_p,
top_k, min_p, repeat and presence penalty per thinking mode, system prompt requirements, each
with the sentence it came from, or a family's defaults from ``data/sampler_defaults.json``
saying so; ``samplers``). Pure text processing: no I/O beyond reading a card file and fit's
data files. A front matter that is not YAML is ``BadInput``; a card that says nothing is an
empty result, never a guess.
"""
