"""Streaming job: Kafka -> Spark Structured Streaming -> PostgreSQL, exactly once."""
