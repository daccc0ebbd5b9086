"""divrob: how the pre-training distribution shapes the robustness of fine-tuned models."""

__version__ = "0.1.0"
