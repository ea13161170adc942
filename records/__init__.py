"""The records fleetscope's topics carry (``records.messages``): defined once, shared by the producer,
every stage, the sinks, the tools and the tests. A lower layer than the pipeline, so that anything may read them."""
