"""ftwatch stdout sink (placeholder until written)."""
