"""Builder assets: one module per output (STYLE.md "What this means for our code" §1-§2)."""
