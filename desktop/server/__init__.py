"""The local API server: OpenAI- and Ollama-compatible endpoints over the one engine."""
