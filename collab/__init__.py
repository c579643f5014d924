"""collab: look at whole-slide images together, live, across hospitals."""

__version__ = "0.1.0"
