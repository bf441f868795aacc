"""pyconc's benchmarks: each compares pyconc with its standard-library (or
numpy) counterpart in the same process and prints ratios."""
