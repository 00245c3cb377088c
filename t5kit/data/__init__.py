"""Data: preprocessing, indexed datasets, pretraining objectives and the SQuAD reader."""
