"""soundbench: reproduce published audio classifiers, from raw archives to paper-ready tables."""

__version__ = "0.1.0"
