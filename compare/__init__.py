"""The comparison harness: equivalence checks, sweeps, benchmarks and reports."""
