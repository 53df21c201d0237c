"""Looking at a network's arithmetic: shapes, counts, receptive fields, conv as a matrix."""

from cnnlab.inspect import arithmetic
from cnnlab.inspect.summary import LayerRow, Summary, summary

__all__ = ["LayerRow", "Summary", "arithmetic", "summary"]
