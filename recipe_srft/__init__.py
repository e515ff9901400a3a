"""SRFT (Supervised Reinforcement Fine-Tuning) recipe for verl."""
