"""Cove's PyTorch implementations of the model families, the registry and the Auto* classes."""
