"""minift: a fine-tuning engine written from scratch in NumPy, for reading and for courses."""

__version__ = "0.1.0"
