"""Models behind one protocol: external backends (Hugging Face, vLLM, OpenAI-compatible, lm-eval)
and the in-repo architecture zoo. ``models.load.load_model(spec)`` is the entry point."""
