"""One exception tree for fleetscope: catch FleetscopeError for anything the project raises."""


class FleetscopeError(Exception):
    """Root of every error fleetscope raises on purpose."""


class ConfigError(FleetscopeError):
    """A setting is missing or wrong; the message says which and how to fix it."""


class ServiceError(FleetscopeError):
    """An embedded or external service failed to start, become ready or stop."""

    def __init__(self, component: str, message: str, log_tail: str = "") -> None:
        self.component = component
        self.log_tail = log_tail
        text = f"{component}: {message}"
        if log_tail:
            text += f"\n--- last lines of the {component} log ---\n{log_tail}"
        super().__init__(text)


class InvalidMessage(FleetscopeError):
    """A message failed validation; ``reason`` is a short machine-readable label for metrics."""

    def __init__(self, reason: str, detail: str) -> None:
        self.reason = reason
        self.detail = detail
        super().__init__(f"{reason}: {detail}")


class InferenceError(FleetscopeError):
    """Triton, reachable, could not serve a request after all retries (it rejected the request's content)."""


class ServiceUnavailable(FleetscopeError):
    """A service the worker needs cannot be reached; the caller waits it out (``streams.health``)."""


class MissingCheckpoint(FleetscopeError):
    """A model's checkpoint file does not exist."""
