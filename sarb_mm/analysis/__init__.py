"""Tools that read finished runs back (sweeps over known proportions)."""
