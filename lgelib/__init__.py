"""lgelib: the companion library of "Synthesis of LGE images via implicit neural representations".

Data on a canonical grid (``lgelib.data``), and the stages of the paper built on it.
"""

__version__ = "0.1.0"
