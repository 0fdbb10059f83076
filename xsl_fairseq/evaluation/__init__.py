"""Zero-shot cross-lingual evaluation (xsl-eval)."""
