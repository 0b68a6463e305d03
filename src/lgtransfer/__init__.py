"""lgtransfer: length-generalization transfer between related tasks in transformers."""

__version__ = "0.1.0"
