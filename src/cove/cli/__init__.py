"""Thin command-line front ends over Cove's public API."""
