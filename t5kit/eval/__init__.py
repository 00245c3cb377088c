"""Evaluation metrics (SQuAD exact match and F1) and evaluation runs."""
