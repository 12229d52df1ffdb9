"""Filled by a later issue (see shared/DESIGN.md): nothing is stored here yet."""
