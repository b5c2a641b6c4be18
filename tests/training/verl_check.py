"""Run by tests/training/test_verl_real.py in a subprocess whose PYTHONPATH puts the verl folder of
.ci/install-verl.sh first (verl's hydra needs antlr 4.9; the system python keeps 4.13). Prints one JSON
object: per response_length, what verl's own ToolAgentLoop produced for a scripted episode and what
swarmgym's export produced for the same episode, plus verl's own padding and batching of the exports.
"""

from __future__ import annotations

import asyncio
import json
import sys
from types import SimpleNamespace
from typing import Any

import antlr4
import torch
from omegaconf import OmegaConf
from verl.experimental.agent_loop.agent_loop import AgentLoopOutput, AgentLoopWorker, DictConfigWrap, ToolListWrap
from verl.experimental.agent_loop.tool_agent_loop import ToolAgentLoop
from verl.tools.function_tool import FunctionTool
from verl.tools.schemas import OpenAIFunctionToolSchema
from verl.workers.rollout.replica import TokenOutput

from swarmgym.chat.tokens import TokenizedConversation
from swarmgym.training.export_verl import to_agent_loop_output, to_verl_output
from swarmgym.training.tiny import make_tiny_tokenizer
from swarmgym.wire import Completion, Message, ToolSpec, Trajectory

PROMPT_LENGTH = 256
# What the model "samples" in each turn (hermes tool calls; two parallel calls in turn 2) and the weight
# version that sampled it.
GENERATIONS = [
    ('<tool_call>\n{"name": "add", "arguments": {"a": 1, "b": 2}}\n</tool_call><|im_end|>', 3),
    (
        '<tool_call>\n{"name": "add", "arguments": {"a": 3, "b": 4}}\n</tool_call>\n'
        '<tool_call>\n{"name": "add", "arguments": {"a": 5, "b": 6}}\n</tool_call><|im_end|>',
        4,
    ),
    ("the sum is 21<|im_end|>", 5),
]
SCHEMA = {
    "type": "function",
    "function": {
        "name": "add",
        "description": "Add two numbers.",
        "parameters": {
            "type": "object",
            "properties": {"a": {"type": "integer"}, "b": {"type": "integer"}},
            "required": ["a", "b"],
        },
    },
}
USER = [{"role": "user", "content": "add 1 and 2, then 3 and 4 and 5 and 6"}]


def add(a: int, b: int) -> str:
    return str(a + b)


class ScriptedServer:
    """verl's server-manager interface, answering with the scripted generations (as verl's LLM server does,
    it reports the weight version in extra_fields)."""

    def __init__(self, tok: Any) -> None:
        self.tok = tok
        self.turn = 0

    async def generate(self, *, request_id: str, prompt_ids: list[int], sampling_params: dict, **_: Any) -> TokenOutput:
        text, version = GENERATIONS[self.turn]
        self.turn += 1
        ids = self.tok.encode(text, add_special_tokens=False)
        return TokenOutput(
            token_ids=ids,
            log_probs=[-0.25] * len(ids),
            extra_fields={"min_global_steps": version, "max_global_steps": version},
        )


async def verl_run(tok: Any, response_length: int) -> AgentLoopOutput:
    # ToolAgentLoop keeps the running event loop from its constructor: build it inside the loop.
    config = OmegaConf.create(
        {
            "actor_rollout_ref": {
                "rollout": {
                    "prompt_length": PROMPT_LENGTH,
                    "response_length": response_length,
                    "full_determinism": False,
                    "multi_turn": {
                        "max_user_turns": None,
                        "max_assistant_turns": None,
                        "max_parallel_calls": 8,
                        "max_tool_response_length": 1000,
                        "tool_response_truncate_side": "middle",
                        "format": "hermes",
                    },
                }
            }
        }
    )
    tool = FunctionTool(name="add", fn=add, tool_schema=OpenAIFunctionToolSchema.model_validate(SCHEMA))
    loop = ToolAgentLoop(
        trainer_config=DictConfigWrap(config),
        server_manager=ScriptedServer(tok),
        tokenizer=tok,
        processor=None,
        dataset_cls=None,
        data_config=DictConfigWrap(OmegaConf.create({})),
        tools=ToolListWrap([tool]),
    )
    return await loop.run({"temperature": 1.0}, raw_prompt=list(USER))


def swarmgym_episode(tok: Any) -> Trajectory:
    """The same episode through swarmgym's own token-exact path (TokenizedConversation)."""
    conv, state = TokenizedConversation(tok), {}
    tools = [ToolSpec(name="add", description="Add two numbers.", parameters=SCHEMA["function"]["parameters"])]
    msgs = [Message(role="user", content=USER[0]["content"])]
    completions = []
    for text, version in GENERATIONS:
        prompt = conv.prompt_ids(msgs, tools, state)
        ids = tok.encode(text, add_special_tokens=False)
        message = conv.parse(ids, None, remember=False)
        conv.record(state, msgs, prompt, ids)
        completions.append(
            Completion(message=message, prompt_ids=prompt, completion_ids=ids, logprobs=[-0.25] * len(ids),
                       policy_version=version, token_exact=True)
        )
        msgs.append(message)
        for call in message.tool_calls or []:
            msgs.append(Message(role="tool", content=add(**call.arguments), tool_call_id=call.id, name=call.name))
    return Trajectory(id="ep", messages=msgs, completions=completions, tools=tools, reward=1.0)


async def verl_batch(tok: Any, outputs: list[AgentLoopOutput], response_length: int) -> dict[str, Any]:
    """verl's own per-sample padding (``_agent_loop_postprocess``) and batching (``_postprocess``)."""
    worker = object.__new__(AgentLoopWorker)  # only the padding/batching methods are used
    worker.rollout_config = SimpleNamespace(prompt_length=PROMPT_LENGTH, response_length=response_length)
    worker.tokenizer, worker.processor, worker.mm_processor_kwargs = tok, None, {}
    worker.reward_loop_worker_handles, worker.distillation_enabled = None, False

    try:
        padded = [await worker._agent_loop_postprocess(o, validate=False, raw_prompt=USER) for o in outputs]
        data = worker._postprocess(padded)
    except Exception as e:  # noqa: BLE001 - reported to the test
        return {"error": f"{type(e).__name__}: {e}"}
    b, nt = data.batch, data.non_tensor_batch
    return {
        "shapes": {k: list(b[k].shape) for k in ("prompts", "responses", "response_mask", "input_ids")},
        "responses": b["responses"].tolist(),
        "response_mask": b["response_mask"].tolist(),
        "rm_scores_at": [int(torch.nonzero(r).flatten()[-1]) if r.any() else -1 for r in b["rm_scores"]],
        "num_turns": nt["__num_turns__"].tolist(),
        "min_global_steps": nt["min_global_steps"].tolist(),
        "max_global_steps": nt["max_global_steps"].tolist(),
    }


def from_verl(out: AgentLoopOutput) -> Trajectory:
    """A swarmgym trajectory holding exactly the ids of a verl run: turn k's prompt is the prompt + the
    response up to the start of its k-th model segment (so the export can be compared id for id)."""
    prompt, resp, mask = list(out.prompt_ids), list(out.response_ids), list(out.response_mask)
    completions, i, turn = [], 0, 0
    while i < len(resp):
        if not mask[i]:
            i += 1
            continue
        j = i
        while j < len(resp) and mask[j]:
            j += 1
        completions.append(
            Completion(message=Message(role="assistant", content=""), prompt_ids=prompt + resp[:i],
                       completion_ids=resp[i:j], logprobs=[-0.25] * (j - i), policy_version=GENERATIONS[turn][1],
                       token_exact=True)
        )
        i, turn = j, turn + 1
    return Trajectory(id="from-verl", completions=completions, reward=1.0)


def fields(o: Any) -> dict[str, Any]:
    return {
        "prompt_ids": list(o.prompt_ids),
        "response_ids": list(o.response_ids),
        "response_mask": list(o.response_mask),
        "num_turns": o.num_turns,
        "min_global_steps": o.extra_fields.get("min_global_steps"),
        "max_global_steps": o.extra_fields.get("max_global_steps"),
    }


async def main() -> None:
    tok = make_tiny_tokenizer("chatml_tools")
    report: dict[str, Any] = {"antlr4": antlr4.__file__}
    # 1. Every response_length from 1 to past the end: verl's ToolAgentLoop vs the export of the same ids.
    full = await verl_run(tok, 10_000)
    report["verl_full"] = fields(full)
    traj_v = from_verl(full)
    cases = []
    for response_length in range(1, len(full.response_ids) + 2):
        v = await verl_run(tok, response_length)
        ours = to_agent_loop_output(traj_v, prompt_length=PROMPT_LENGTH, response_length=response_length)
        cases.append({"response_length": response_length, "verl": fields(v), "swarmgym": fields(ours),
                      "type": type(ours).__module__ + "." + type(ours).__name__})
    report["cases"] = cases
    # 2. The same episode through swarmgym's own TokenizedConversation (its ids between turns may differ
    #    from verl's default token builder; the test says how).
    traj = swarmgym_episode(tok)
    report["own"] = fields(to_agent_loop_output(traj, prompt_length=PROMPT_LENGTH, response_length=10_000))
    # 3. verl's padding + batching on swarmgym exports of different lengths, and on an uncut export (a
    #    response longer than response_length, as the export gave before it took response_length).
    rl = 30
    short = Trajectory(id="short", messages=traj.messages[:2], completions=traj.completions[:1], reward=0.0)
    cut = [to_agent_loop_output(t, prompt_length=PROMPT_LENGTH, response_length=rl) for t in (traj, short)]
    report["batch_cut"] = await verl_batch(tok, cut, rl)
    report["batch_cut_expected"] = [fields(o) for o in cut]
    uncut = to_verl_output(traj, prompt_length=PROMPT_LENGTH, response_length=10_000)
    report["batch_uncut"] = await verl_batch(tok, cut[:1] + [AgentLoopOutput(**uncut)], rl)
    report["uncut_response_len"] = len(uncut["response_ids"])
    json.dump(report, sys.stdout)


if __name__ == "__main__":
    asyncio.run(main())
