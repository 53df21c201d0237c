"""Training: the engine, the tasks it trains, callbacks, scoring, optimisers and the `cnnlab train` run."""
