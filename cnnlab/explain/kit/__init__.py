"""The floor every explanation method stands on: types, registry, batching, memory, quadrature, noise, images, hooks, options."""
