"""The data contract between the SRFT trainer, the ``srft_agent`` agent loop and the SRFT loss: every key one
part writes and another reads, in one place (the parts import the names from here, never spell them).

Prompt rows (non-tensor, one value per training prompt), written by ``SRFTTrainer._fetch_one_gen_batch``, read
by ``SRFTAgentLoop.run`` (verl passes a row's fields to the agent loop as keyword arguments):

=======================  =======  ===========================================================================
``NUM_ROLLOUTS``         int      n, the prompt's on-policy rollouts; sessions ``>= n`` are demonstrations
``DEMO_FIELDS``          str      comma-separated columns holding the demonstrations (``srft.demo_fields``)
=======================  =======  ===========================================================================

(The trainer also sets verl's own ``__rollout_n__`` = n + m_i and ``agent_name`` = ``srft_agent``.)

Trajectory ``extra_fields`` (non-tensor), written by the agent loop, read once by the trainer right after
generation (``SRFTTrainer._mark_demos``):

=======================  =======  ===========================================================================
``EXTRA_IS_DEMO``        0 / 1    the trajectory is a demonstration
``EXTRA_DEMO_TRUNCATED`` 0 / 1    the demonstration was cut to ``data.max_response_length``
=======================  =======  ===========================================================================

Tensor fields of the batch in TransferQueue (one value per trajectory, ``[B]``):

=======================  =======  ==============================  ==========================================
key                      dtype    written by (phase)              read by
=======================  =======  ==============================  ==========================================
``IS_DEMO``              int64    trainer, after generation       advantage, actor update, loss
``DEMO_TRUNCATED``       int64    trainer, after generation       advantage (metrics)
``REWARDS``              float32  trainer, advantage              loss (``positive_by=reward``, metrics)
``DEMO_NUM_TOKENS``      float32  trainer, actor update           loss: SFT denominator of the mini-batch
``RL_NUM_TOKENS``        float32  trainer, actor update           loss: token denominator of L_rl
``RL_NUM_SEQS``          float32  trainer, actor update           loss: sequence denominator of L_rl
``BATCH_ENTROPY``        float32  trainer, actor update           loss: ``entropy_scope=batch``
``KEEP``                 int64    trainer, advantage              actor update, loss: rows the group gate keeps
``KEPT_NUM_TOKENS``      float32  trainer, actor update           loss: entropy-bonus denominator under a gate
``GLOBAL_STEP``          float32  trainer, actor update           loss: verl's step, for ``srft.mix=chord``
=======================  =======  ==============================  ==========================================

``DEMO_NUM_TOKENS`` to ``BATCH_ENTROPY``, ``KEPT_NUM_TOKENS`` and ``GLOBAL_STEP`` are constant over the rows of
one optimizer mini-batch (the loss checks it): global counts over its micro-batches and data-parallel ranks,
which a micro-batch's loss cannot see. Padding rows added by verl (tag ``is_padding``) carry ``IS_DEMO = 0`` and
an all-zero response mask, so they count nowhere. ``KEEP`` is 1 on every row unless ``srft.group_gate`` drops it.
"""

from __future__ import annotations

# prompt rows -> agent loop
NUM_ROLLOUTS = "srft_num_rollouts"
DEMO_FIELDS = "srft_demo_fields"
AGENT_NAME = "srft_agent"

# agent loop -> trainer (trajectory extra_fields)
EXTRA_IS_DEMO = "srft_is_demo"
EXTRA_DEMO_TRUNCATED = "srft_demo_truncated"

# trainer -> loss (tensor fields in TransferQueue)
IS_DEMO = "is_demo"
DEMO_TRUNCATED = "srft_demo_truncated"
REWARDS = "srft_rewards"
DEMO_NUM_TOKENS = "srft_demo_num_tokens"
RL_NUM_TOKENS = "srft_rl_num_tokens"
RL_NUM_SEQS = "srft_rl_num_seqs"
BATCH_ENTROPY = "srft_batch_entropy"
KEEP = "srft_keep"
KEPT_NUM_TOKENS = "srft_kept_num_tokens"
GLOBAL_STEP = "srft_global_step"

#: what the loss needs in every micro-batch besides verl's own fields
LOSS_FIELDS = (IS_DEMO, REWARDS, DEMO_NUM_TOKENS, RL_NUM_TOKENS, RL_NUM_SEQS)
#: what the loss reads when present (the trainer always writes them)
OPTIONAL_LOSS_FIELDS = (BATCH_ENTROPY, KEEP, KEPT_NUM_TOKENS, GLOBAL_STEP)
