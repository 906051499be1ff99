"""A small calculator package."""

from calculator.arithmetic import add, divide, multiply, subtract
from calculator.stats import mean, median

__all__ = ["add", "divide", "mean", "median", "multiply", "subtract"]
