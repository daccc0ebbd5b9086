"""Recipes: TOML files declaring pre-training distributions (with sweeps) and a study grid."""
