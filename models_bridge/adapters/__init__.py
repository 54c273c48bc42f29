"""Adapters turn model inputs into logits over a model's labels (docs/models.md). This package
imports no Django, so an MLServer process can load a package with the same code."""
