"""The decision space: what llama-server can express about placement.

``Plan``: -ngl slots (output head last), -ts as integer layer counts, and per (layer, unit)
overrides, where units are the movable tensor groups of a layer (routed experts, shared
experts, dense FFN; ``units``). ``render`` turns a plan into ``-ngl/-ts/-ot`` arguments with
merged, readable regexes; ``strategy`` names a plan's shape (A-D) for people.
"""
