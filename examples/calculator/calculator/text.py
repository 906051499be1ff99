"""Formatting helpers for calculator results."""


def format_result(value, places=2):
    """Format a number with a fixed number of decimal places."""
    return f"{value:.{places}f}"


def parse_number(text):
    """Parse a number from text, accepting surrounding whitespace."""
    text = text.strip()
    if "." in text:
        return float(text)
    return int(text)
