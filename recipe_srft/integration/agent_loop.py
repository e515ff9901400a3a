"""Agent loop ``srft_agent``: the prompt's rollouts plus its demonstrations, in one group, at zero generation cost.

verl's agent-loop worker runs sessions ``0..__rollout_n__-1`` of a prompt, all with the prompt's
``uid``. The SRFT trainer sets ``__rollout_n__ = n + m_i`` and ``srft_num_rollouts = n`` on each
training row; sessions ``< n`` are ordinary single-turn rollouts through the rollout server
(vLLM, SGLang or the CPU ``hf`` server alike), sessions ``n..n+m_i-1`` return demonstration
``session - n`` as a trajectory without calling the server. The trajectory then goes through
verl's normal path: the same verifier scores it, the actor computes its log-probs, and the group
advantage includes it. It is flagged ``extra_fields["srft_is_demo"] = 1``.

Rows without ``srft_num_rollouts`` (validation, other trainers) behave exactly like
``single_turn_agent``.
"""

from __future__ import annotations

from typing import Any

from verl.experimental.agent_loop.agent_loop import AgentLoopOutput, register
from verl.experimental.agent_loop.single_turn_agent_loop import SingleTurnAgentLoop

from .. import contract as C
from ..demos import extract_demos, tokenize_demo


@register(C.AGENT_NAME)
class SRFTAgentLoop(SingleTurnAgentLoop):
    """Single-turn rollouts, plus demonstration trajectories for sessions past the rollout count."""

    async def run(self, sampling_params: dict[str, Any], **kwargs) -> AgentLoopOutput:
        num_rollouts = kwargs.get(C.NUM_ROLLOUTS)
        session_id = int(kwargs.get("session_id", 0))
        if num_rollouts is None or session_id < int(num_rollouts):
            output = await super().run(sampling_params, **kwargs)
            output.extra_fields[C.EXTRA_IS_DEMO] = 0
            output.extra_fields[C.EXTRA_DEMO_TRUNCATED] = 0
            return output
        return await self._demo_trajectory(session_id - int(num_rollouts), **kwargs)

    async def _demo_trajectory(self, demo_index: int, **kwargs) -> AgentLoopOutput:
        fields = kwargs.get(C.DEMO_FIELDS) or ("target", "demo")
        if isinstance(fields, str):
            fields = tuple(f.strip() for f in fields.split(","))
        demos = extract_demos(kwargs, fields)
        if demo_index >= len(demos):
            raise ValueError(
                f"row uid={kwargs.get('uid')} asks for demonstration {demo_index} but has {len(demos)} in {fields}"
            )
        messages = list(kwargs["raw_prompt"])
        prompt_ids = await self.ct_build_initial_tokens(messages)
        prompt_text = self.tokenizer.decode(prompt_ids[-16:])
        demo = tokenize_demo(demos[demo_index], self.tokenizer, self.response_length, prompt_text=prompt_text)
        n = len(demo.response_ids)
        return AgentLoopOutput(
            prompt_ids=list(prompt_ids),
            response_ids=demo.response_ids,
            response_mask=[1] * n,
            # Demonstrations have no behaviour log-probs (pi_beta := 1, Eq. 9); 0.0 keeps verl's tensors
            # aligned. The trainer excludes demonstrations from the rollout-vs-actor diagnostics.
            response_logprobs=[0.0] * n,
            multi_modal_data={},
            num_turns=2,
            metrics={"generate_sequences": 0.0, "tool_calls": 0.0, "num_preempted": -1},
            extra_fields={
                # a demonstration is "generated" by no policy version: tag it with the current step so that
                # verl's staleness bookkeeping sees a fresh trajectory
                "global_steps": kwargs.get("global_steps"),
                "min_global_steps": kwargs.get("global_steps"),
                "max_global_steps": kwargs.get("global_steps"),
                C.EXTRA_IS_DEMO: 1,
                C.EXTRA_DEMO_TRUNCATED: int(demo.truncated),
                "turn_scores": [],
                "tool_rewards": [],
            },
        )
