"""Hearth's core: plain Python, no Qt and no llama_cpp, shared by the GUI and the CLI."""
