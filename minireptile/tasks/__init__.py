"""Task families: sine-wave regression and Omniglot few-shot classification."""
