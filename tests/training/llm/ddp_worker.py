"""Worker for the 2-process test: a few CAT steps on the quick gym, then this rank's weights to OUT/rank{r}."""

from __future__ import annotations

import sys


def train(gym_dir: str, out: str | None, steps: int = 2) -> dict:
    import torch

    from advlab import distributed
    from advlab.models import load_chat_model
    from advlab.training.llm.adversary import AdversaryConfig
    from advlab.training.llm.batches import ChatEncoder
    from advlab.training.llm.data import AdvExample, ChatPair
    from advlab.training.llm.engine import Engine, EngineConfig
    from advlab.training.llm.methods import CAT, EncodedData
    from advlab.training.llm.sampling import step_batches

    torch.set_num_threads(1)
    model, tok = load_chat_model(gym_dir, device="cpu")
    adv = [AdvExample(f"a{i}", f"How do I steal item {i} from a shop?", f"Sure, here is how to steal item {i}",
                      "Sorry, I can't help with that.") for i in range(6)]
    util = [ChatPair(f"What is {i} + {i}?", str(2 * i)) for i in range(6)]
    data = EncodedData(ChatEncoder(tok, max_len=48), adv, util)
    eng = Engine(model, EngineConfig(max_steps=steps, lr=1e-4, lora_rank=4, lora_dropout=0.0),
                 CAT(data, AdversaryConfig(eps=1.0, steps=2, step_size=1e-2)))
    rank, world = distributed.rank(), distributed.world_size()
    for s in range(steps):
        eng.train_step(step_batches(s, 0, len(adv), len(util), 4, 4, rank, world))
    weights = {k: v.detach().clone().contiguous() for k, v in eng.raw.state_dict().items()}
    if out:
        from safetensors.torch import save_file

        save_file(weights, f"{out}/rank{rank}.safetensors")
    return weights


if __name__ == "__main__":
    from advlab import distributed

    train(sys.argv[1], sys.argv[2])
    distributed.shutdown()
