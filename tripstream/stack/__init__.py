"""Start the pipeline's services on one machine without Docker (embedded defaults)."""
