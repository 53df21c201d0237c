"""cnnlab: design, inspect, train, evaluate and look inside convolutional networks.

`import cnnlab` stays cheap: subpackages (`cnnlab.nn`, `cnnlab.inspect`, ...) import torch
only when they are imported themselves.
"""

__version__ = "0.1.0"
