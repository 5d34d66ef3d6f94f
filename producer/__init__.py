"""Producer: watch the inbox, validate trip files, publish their rows to Kafka."""
