"""Demo synthesisers: each dataset in its real on-disk layout and archive format, with learnable audio."""
