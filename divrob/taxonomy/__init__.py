"""Label hierarchies: WordNet via nltk (`wordnet`), ImageNet-1k classes and WordNet-depth
relabelling from shipped metadata (`imagenet`), BREEDS-style superclass maps (`breeds`)."""
