"""MEDIQA 2019 RQE (recognising question entailment), true/false, accuracy.

Source schema of ``bigbio/mediqa_rqe`` (config ``mediqa_rqe_source``): ``pid``, ``value``
("true"/"false"), ``chq`` (the consumer health question), ``faq`` (the FAQ question).
"""

from __future__ import annotations

from evaluator.tasks.base import Doc, LoadSpec, Prompt, SampleScore, Task, register
from evaluator.tasks.extract import score_label

LABELS = ("true", "false")
# Words a model uses for the same verdict; "not entailed" is caught before "entailed".
SYNONYMS = {"yes": "true", "no": "false", "entailed": "true", "entails": "true", "not entailed": "false"}
INSTRUCTION = (
    "Question A entails question B if every answer to B is also a complete or partial answer to A. "
    "Does question A entail question B? Answer true or false."
)


@register
class MediqaRQE(Task):
    name = "mediqa"
    load_spec = LoadSpec(hub_id="bigbio/mediqa_rqe", config="mediqa_rqe_source", split="test")
    metrics = ("accuracy",)
    id_field = "pid"
    harness = "MEDIQA 2019 Task 2 (RQE), generative; accuracy on true/false"
    version = 1

    def prompt(self, doc: Doc) -> Prompt:
        d = doc.data
        text = f"{INSTRUCTION}\n\nQuestion A: {d['chq'].strip()}\nQuestion B: {d['faq'].strip()}\nAnswer:"
        return Prompt(text=text, messages=[{"role": "user", "content": text}])

    def score(self, doc: Doc, completion: str) -> SampleScore:
        gold = str(doc.data["value"]).strip().lower()
        return score_label(completion, gold, LABELS, SYNONYMS)
