"""strategy layer (see DESIGN.md)."""
