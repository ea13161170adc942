"""The foundation every package imports: settings, the exception tree and bounded retries."""
