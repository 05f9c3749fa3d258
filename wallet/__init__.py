"""City wallet pass service: signed passes that staff verify offline."""

__version__ = "0.1.0"
