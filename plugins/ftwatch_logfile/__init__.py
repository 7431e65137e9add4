"""ftwatch logfile sink (placeholder until written)."""
