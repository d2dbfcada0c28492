"""Builder steps: one module per tool (STYLE.md "What this means for our code" §1-§2)."""
