"""CPU experiments and fixtures, apart from the CPU runtime (``recipe_srft.cpu``):

* ``demo`` (``python -m recipe_srft.experiments.demo``, ``run_scripts/cpu_demo.sh``): SmolLM2-135M before/after SRFT;
* ``compare`` (``run_scripts/compare_cpu.sh``): several presets on the same budget;
* ``demo_task``: the synthetic word-problem task; ``smoke_data``: the smoke run's data;
* ``tiny_model``: the tiny random Qwen2 model the tests train; ``smollm2``: the SmolLM2 fetcher (PyPI package).
"""
