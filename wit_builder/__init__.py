"""wit-builder: build CLIP-style image-text datasets from Wikipedia queries and web crawls."""

__version__ = "0.1.0"
