"""Real data sets that work offline, one module each, loaded the standard way."""
