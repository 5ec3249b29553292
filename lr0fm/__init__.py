"""lr0fm: the LR0.FM low-resolution benchmark and LR-TK0 tokens for vision-language foundation models.

The top-level package stays import-light (no torch, no Lightning) so that ``lr0fm --help`` is instant;
subpackages import what they need.
"""

__version__ = "0.1.0"
