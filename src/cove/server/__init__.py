"""Cove's hub server: the Hugging Face Hub HTTP protocol over the embedded hub (cove.store)."""
