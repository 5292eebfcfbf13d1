"""The curated Vietnamese knowledge base: articles, ingestion, hybrid retrieval."""
