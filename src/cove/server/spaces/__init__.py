"""Spaces: the hub builds, sandboxes, runs and proxies Gradio (and static) space repos."""
