"""Words for people: what every part prints or records for someone to read (a command's output, a gap's
explanation, an export's headers) counts things one way."""


def counted(n: int, noun: str, *, grouped: bool = False) -> str:
    """``1 room``, ``2 rooms``: read by people (nouns here take an s); ``grouped``: ``12,345 events``."""
    number = f"{n:,}" if grouped else f"{n}"
    return f"{number} {noun}{'' if n == 1 else 's'}"
