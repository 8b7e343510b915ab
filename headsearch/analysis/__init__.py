"""Analyses of a model's heads that strategies build on: gradient importance, attention signatures, head
clusters, knee detection, and exact batched scoring of many head masks."""
