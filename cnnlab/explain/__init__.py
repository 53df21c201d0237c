"""Looking inside a trained CNN: attribution maps, LRP, and the checks of whether to trust them.

`attribute(model, images, method, target=None, layer=None, **options)` is the one entry point;
`list_methods()` names what it takes. Hooks live only inside context managers (explain.hooks),
and the model leaves every call as it came in.
"""

from cnnlab.explain.core import Attribution, attribute, default_layer, list_methods
from cnnlab.explain.hooks import hook_count, preserved, verify_no_hooks
from cnnlab.explain.pixels import PixelModel

__all__ = ["Attribution", "PixelModel", "attribute", "default_layer", "hook_count", "list_methods", "preserved",
           "verify_no_hooks"]
