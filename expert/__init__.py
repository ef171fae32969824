"""gpu-expert: which GPU(s) to buy or rent for Llama-family LLMs, and why."""

__version__ = "0.1.0"
