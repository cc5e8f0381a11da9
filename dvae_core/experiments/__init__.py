"""One module per paper: profiles, runs and claim checks."""
