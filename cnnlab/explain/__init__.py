"""Looking inside a trained CNN: attribution maps, LRP, and the checks of whether to trust them.

`attribute(model, images, method, target=None, layer=None, **options)` is the one entry point;
`list_methods()` names what it takes. Hooks live only inside context managers (explain.kit.hooks),
and the model leaves every call as it came in.

The house inside: `kit/` (context, result, registry, batching, memory, quadrature, noise, images,
hooks, options) is the floor the methods stand on; `methods/` (gradient, cam, lrp, perturbation)
register themselves on it; `api` imports them and is the entry point; `checks/` (sanity,
faithfulness) and `pictures/` (featureviz, exemplars, filters, style, embedding, render) stand on
the kit and the API.
"""

from cnnlab.explain.api import attribute, default_layer, list_methods
from cnnlab.explain.kit.hooks import hook_count, preserved, verify_no_hooks
from cnnlab.explain.kit.noise import smooth
from cnnlab.explain.kit.pixels import PixelModel
from cnnlab.explain.kit.types import Attribution

#: The rooms of this wing, bottom up, as cnnlab.FLOORS: a room imports only from its own and lower levels.
ROOMS = (("kit",), ("methods",), ("api",), ("checks", "pictures"))

__all__ = ["Attribution", "PixelModel", "attribute", "default_layer", "hook_count", "list_methods", "preserved",
           "smooth", "verify_no_hooks"]
