"""How the models are trained: simulator datasets replayed through the worker's context stage,
captions and the training loops. A tool above sim/ and streams/, below the evaluation that uses it."""
