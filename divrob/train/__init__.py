"""Training: architectures, configs, the data path, and the plain pre-train / fine-tune loop."""
