"""recipe-srft: Supervised Reinforcement Fine-Tuning (SRFT, arXiv 2506.19767) on verl 0.9.1."""

__version__ = "0.1.0"
