# A LoRA that carries facts (docs/knowledge.md#a-lora-that-carries-facts): the knowledge experiment's base and
# plain LoRA (config/sweeps/knowledge.py, reused), and LoRA arms trained on paraphrased statements of the held-out
# people's facts plus statements and Q&A of other, new people (Allen-Zhu and Li's knowledge augmentation and mixed
# training), without and with replay of the base's documents; 3 seeds.
#   python tools/knowledge.py config/sweeps/knowledge_lora.py
from config.sweeps.knowledge import base, data, forgetting, lora, name, seeds  # noqa: F401 (this config's values too)

qa_people = 100  # new people whose statements and Q&A the arms train on (the held-out targets get statements only)
_steps = {"max_iters": 1500, "lr_decay_iters": 1500, "eval_interval": 250}  # 5x lora's 300 steps
lora_facts = {  # arm: data keys (paraphrases, qa_share, replay) and train.py keys on top of lora's
    "facts": {"paraphrases": 8, "qa_share": 0.25, **_steps},
    "facts_replay": {"paraphrases": 8, "qa_share": 0.25, "replay": 0.2, **_steps},
}
